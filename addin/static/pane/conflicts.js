// C2: internal attendees who are busy in the CRM calendar at the meeting's time.
import { api } from "./api.js";
import { $, el, when } from "./dom.js";
import { userEmail } from "./office.js";

export async function showConflicts(meeting, ownActivityId = null) {
  const emails = new Set(meeting.attendees.map((a) => a.email));
  const me = userEmail();
  if (me) emails.add(me);
  const users = (await api.users()).items.filter((u) => emails.has(String(u.email).toLowerCase()));
  const range = { start: meeting.start.toISOString(), end: meeting.end.toISOString(), limit: "50" };
  const busy = [];
  for (const user of users) {
    const page = await api.activities({ ...range, owner_id: String(user.id) });
    for (const activity of page.items) {
      if (activity.id === ownActivityId) continue; // this very meeting, already saved
      if (activity.status === "cancelled" || activity.show_as === "free") continue;
      // The list returns what overlaps the range; touching end to start is not a conflict.
      if (new Date(activity.end) <= meeting.start || new Date(activity.start) >= meeting.end) continue;
      busy.push({ user, activity });
    }
  }
  const list = $("conflicts");
  list.replaceChildren(
    ...busy.map(({ user, activity }) =>
      el(
        "li",
        {},
        `${user.display_name || user.email}: ${activity.subject || "Busy"}`,
        el("span", { class: "when" }, when(activity.start, activity.end)),
      ),
    ),
  );
  $("conflicts-box").hidden = busy.length === 0;
}
