// Read mode (organizer or attendee opening the meeting): the linked company and contacts,
// its recent and upcoming activities, and after the meeting: held / not held (D1).
import { api, ApiError } from "./api.js";
import { $, el, status, when } from "./dom.js";
import { loadCustomProperties, readAppointment, restItemId } from "./office.js";
import { readTag } from "./tags.js";

const DAY = 24 * 3600 * 1000;
const STATUS_WORDS = { planned: "Planned", held: "Held", not_held: "Not held", cancelled: "Cancelled" };

export async function startRead(item) {
  const [meeting, props] = await Promise.all([readAppointment(item), loadCustomProperties(item)]);
  $("read-summary").textContent = `${meeting.subject || "(no subject)"} · ${when(meeting.start, meeting.end)}`;
  $("read").hidden = false;
  status("Looking for this meeting in the CRM…");
  const activity = await findActivity(meeting, readTag(props), restItemId(item));
  if (!activity || !activity.company_id) {
    $("read-unlinked").hidden = false;
    status("");
    if (activity) offerOutcome(activity, meeting);
    return;
  }
  const [company, contacts] = await Promise.all([
    api.company(activity.company_id),
    Promise.all((activity.contact_ids || []).map((id) => api.contact(id).catch(() => null))),
  ]);
  $("read-company").textContent = company.name;
  $("read-contacts").textContent =
    contacts.filter(Boolean).map((c) => c.name || c.emails[0]).join(", ") || "none";
  $("read-status").textContent = STATUS_WORDS[activity.status] || activity.status;
  $("read-linked").hidden = false;
  offerOutcome(activity, meeting);
  await showHistory(company, activity);
  status("");
}

/** The tag's activity id when the item carries one (the organizer's copy); else the activity
 * sync linked to this copy of the event (an attendee's); else the CRM activity at that time. */
async function findActivity(meeting, tag, eventId) {
  const lookups = [
    tag && tag.activityId ? () => api.activity(tag.activityId) : null,
    eventId ? () => api.activityForEvent(eventId) : null,
  ];
  for (const lookup of lookups.filter(Boolean)) {
    try {
      return await lookup();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
  }
  const page = await api.activities({
    start: meeting.start.toISOString(),
    end: new Date(meeting.end.getTime() + 1).toISOString(),
    limit: "50",
  });
  const sameTime = page.items.filter(
    (a) => !a.private && new Date(a.start).getTime() === meeting.start.getTime(),
  );
  const bySubject = sameTime.find((a) => (a.subject || "") === meeting.subject);
  const byCompany = tag && tag.companyId ? sameTime.find((a) => a.company_id === tag.companyId) : null;
  return bySubject || byCompany || sameTime[0] || null;
}

function offerOutcome(activity, meeting) {
  if (meeting.end.getTime() > Date.now() || activity.status === "cancelled") return;
  const form = $("outcome-form");
  form.hidden = false;
  if (activity.status === "held" || activity.status === "not_held") {
    form.querySelector(`input[name="held"][value="${activity.status}"]`).checked = true;
    $("outcome").value = activity.outcome || "";
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const choice = form.querySelector('input[name="held"]:checked');
    if (!choice) {
      status("Choose held or not held.", "error");
      return;
    }
    $("record").disabled = true;
    try {
      const updated = await api.updateActivity(activity.id, {
        status: choice.value,
        outcome: $("outcome").value.trim(),
      });
      $("read-status").textContent = STATUS_WORDS[updated.status] || updated.status;
      status(`Recorded: ${STATUS_WORDS[updated.status].toLowerCase()}.`, "ok");
    } catch (error) {
      status(`Could not record it: ${error.message}`, "error");
    } finally {
      $("record").disabled = false;
    }
  });
}

async function showHistory(company, current) {
  const now = Date.now();
  const page = await api.activities({
    company_id: String(company.id),
    start: new Date(now - 180 * DAY).toISOString(),
    end: new Date(now + 180 * DAY).toISOString(),
    limit: "100",
  });
  const others = page.items.filter((a) => a.id !== current.id && a.status !== "cancelled");
  const upcoming = others.filter((a) => new Date(a.start).getTime() >= now).slice(0, 5);
  const recent = others.filter((a) => new Date(a.start).getTime() < now).reverse().slice(0, 5);
  const row = (a) =>
    el(
      "li",
      { "data-activity-id": a.id },
      `${a.subject || a.kind}${a.status !== "planned" ? ` (${STATUS_WORDS[a.status] || a.status})` : ""}`,
      el("span", { class: "when" }, when(a.start, a.end)),
      a.outcome ? el("span", { class: "when" }, a.outcome) : null,
    );
  const empty = (text) => el("li", { class: "hint" }, text);
  $("upcoming").replaceChildren(...(upcoming.length ? upcoming.map(row) : [empty("Nothing planned")]));
  $("recent").replaceChildren(...(recent.length ? recent.map(row) : [empty("Nothing in the last six months")]));
  $("history").hidden = false;
}
