// The custom properties the pane writes on the item. Office keeps all of an add-in's custom
// properties as ONE JSON object (the `cecp-<add-in id>` property Graph returns), so each key is
// written as its own property: the stored JSON is then exactly
// {"crmCompanyId":"12","crmContactIds":"3,4","crmKind":"meeting","crmActivityId":"77"},
// which graph/events.parse_tag_hint reads. The names must equal graph/events.TAG_* (a test
// compares them).
export const TAG_COMPANY = "crmCompanyId";
export const TAG_CONTACTS = "crmContactIds";
export const TAG_KIND = "crmKind";
export const TAG_ACTIVITY = "crmActivityId";

/** The tag stored on the item, or null. Values are strings, as Office stores them. */
export function readTag(customProperties) {
  const company = customProperties.get(TAG_COMPANY);
  const activity = customProperties.get(TAG_ACTIVITY);
  if (!company && !activity) return null;
  const contacts = String(customProperties.get(TAG_CONTACTS) || "")
    .split(",")
    .map((part) => Number.parseInt(part, 10))
    .filter((n) => Number.isInteger(n) && n > 0);
  return {
    companyId: company ? Number.parseInt(company, 10) : null,
    contactIds: contacts,
    kind: customProperties.get(TAG_KIND) || null,
    activityId: activity ? Number.parseInt(activity, 10) : null,
  };
}

/** Writes the tag as four string properties (the caller saves them). */
export function writeTag(customProperties, { companyId, contactIds, kind, activityId }) {
  customProperties.set(TAG_COMPANY, companyId == null ? "" : String(companyId));
  customProperties.set(TAG_CONTACTS, contactIds.join(","));
  customProperties.set(TAG_KIND, kind);
  customProperties.set(TAG_ACTIVITY, activityId == null ? "" : String(activityId));
}
