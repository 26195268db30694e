// Promise wrappers around Office.js's callback API, and reading the appointment in either
// mode. Compose mode exposes async getters (item.subject.getAsync); read mode plain values.

/** Calls an Office async method (callback last) and resolves with asyncResult.value. */
export function officeCall(target, method, ...args) {
  return new Promise((resolve, reject) => {
    target[method](...args, (result) => {
      if (result.status === Office.AsyncResultStatus.Succeeded) resolve(result.value);
      else reject(new Error(result.error ? result.error.message : `${method} failed`));
    });
  });
}

export function currentItem() {
  // Outside Outlook (the page opened in a browser) there is no mailbox.
  const mailbox = Office.context && Office.context.mailbox;
  return mailbox ? mailbox.item : null;
}

/** The read-mode item's id in the REST / Graph form sync stores; null where unavailable
 * (compose mode has no id before the first save; convertToRestId is Mailbox 1.3). */
export function restItemId(item) {
  const mailbox = Office.context.mailbox;
  if (!item.itemId || typeof mailbox.convertToRestId !== "function") return null;
  try {
    return mailbox.convertToRestId(item.itemId, Office.MailboxEnums.RestVersion.v2_0);
  } catch (error) {
    return null;
  }
}

/** True when the user is composing (organizer editing), false when reading. */
export function isCompose(item) {
  return Boolean(item.subject && typeof item.subject.getAsync === "function");
}

function people(list, role) {
  return (list || []).map((person) => ({
    email: String(person.emailAddress || "").toLowerCase(),
    name: person.displayName || "",
    role,
  }));
}

/** subject, start, end (Date), attendees [{email, name, role}] of the appointment. */
export async function readAppointment(item) {
  if (isCompose(item)) {
    const [subject, start, end, required, optional] = await Promise.all([
      officeCall(item.subject, "getAsync"),
      officeCall(item.start, "getAsync"),
      officeCall(item.end, "getAsync"),
      officeCall(item.requiredAttendees, "getAsync"),
      officeCall(item.optionalAttendees, "getAsync"),
    ]);
    return {
      subject: subject || "",
      start: new Date(start),
      end: new Date(end),
      attendees: [...people(required, "required"), ...people(optional, "optional")],
    };
  }
  return {
    subject: item.subject || "",
    start: new Date(item.start),
    end: new Date(item.end),
    attendees: [
      ...people(item.requiredAttendees, "required"),
      ...people(item.optionalAttendees, "optional"),
    ],
  };
}

export function loadCustomProperties(item) {
  return officeCall(item, "loadCustomPropertiesAsync");
}

export function userEmail() {
  const profile = Office.context.mailbox.userProfile;
  return profile ? String(profile.emailAddress || "").toLowerCase() : "";
}

/**
 * Sets the category "CRM: <company>". Outlook only accepts categories from the mailbox's
 * master list, so a missing one is added there first. A failure is reported, not fatal:
 * the custom property is the tag, the category only makes it visible in the calendar.
 */
export async function addCategory(item, name) {
  if (!item.categories) return false;
  // A re-tag replaces the category of the company chosen before.
  const present = await officeCall(item.categories, "getAsync").catch(() => null);
  const stale = (present || [])
    .map((category) => category.displayName)
    .filter((label) => label.startsWith("CRM: ") && label !== name);
  if (stale.length) await officeCall(item.categories, "removeAsync", stale).catch(() => null);
  try {
    await officeCall(item.categories, "addAsync", [name]);
    return true;
  } catch {
    const master = Office.context.mailbox.masterCategories;
    if (!master) return false;
    try {
      const color = Office.MailboxEnums && Office.MailboxEnums.CategoryColor;
      await officeCall(master, "addAsync", [
        { displayName: name, color: color ? color.Preset7 : "Preset7" },
      ]);
      await officeCall(item.categories, "addAsync", [name]);
      return true;
    } catch {
      return false;
    }
  }
}
