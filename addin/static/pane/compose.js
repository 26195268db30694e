// Compose mode (the organizer writing the appointment): suggestions, company search,
// contacts, kind, conflicts, and saving the CRM activity plus the tag on the item.
import { api, ApiError } from "./api.js";
import { showConflicts } from "./conflicts.js";
import { $, debounce, el, status, when } from "./dom.js";
import { addCategory, loadCustomProperties, officeCall, readAppointment } from "./office.js";
import { CompanySearch } from "./search.js";
import { readTag, writeTag } from "./tags.js";

const state = {
  item: null,
  meeting: null, // {subject, start, end, attendees}
  props: null, // Office CustomProperties
  tag: null, // what the item already carries
  company: null, // {id, name}
  contacts: new Map(), // contact id -> {contact, email, checked}
  suggestions: null,
};

export async function startCompose(item) {
  state.item = item;
  const [meeting, props] = await Promise.all([readAppointment(item), loadCustomProperties(item)]);
  state.meeting = meeting;
  state.props = props;
  state.tag = readTag(props);
  $("meeting-summary").textContent = `${meeting.subject || "(no subject)"} · ${when(meeting.start, meeting.end)}`;
  $("compose").hidden = false;

  new CompanySearch($("search"), $("results"), $("results-status"), selectCompany);
  $("save").addEventListener("click", () => save().catch(failed));
  if (state.tag && state.tag.kind) {
    const radio = document.querySelector(`input[name="kind"][value="${state.tag.kind}"]`);
    if (radio) radio.checked = true;
  }

  status("Looking up the attendees…");
  await loadSuggestions();
  const hinted = state.tag ? null : await notificationHint(item);
  if (state.tag && state.tag.companyId) {
    const company = await api.company(state.tag.companyId).catch(() => null);
    if (company) selectCompany(company, { keepContacts: true });
  } else if (hinted) {
    // Opened from the "Link this meeting to <company>?" prompt: that company is the choice.
    const company = await api.company(hinted).catch(() => null);
    if (company) selectCompany(company);
  }
  if (!state.company && state.suggestions.companies.length > 0) {
    // The best suggestion is preselected: most meetings are with one customer.
    selectCompany(state.suggestions.companies[0].company);
  }
  status(state.company ? "" : "Choose the company this meeting is with.");
  showConflicts(meeting, state.tag && state.tag.activityId).catch(() => {}); // extra information: never blocks tagging
}

/** The company id the event runtime put in the notification's contextData, if any. */
async function notificationHint(item) {
  if (typeof item.getInitializationContextAsync !== "function") return null;
  try {
    let context = await officeCall(item, "getInitializationContextAsync");
    // A JSON string; hosts differ in whether an object given as contextData arrives encoded
    // once or twice, so a string inside is decoded again.
    for (let depth = 0; typeof context === "string" && depth < 2; depth += 1) {
      context = JSON.parse(context);
    }
    const id = context ? Number(context.companyId) : null;
    return Number.isInteger(id) ? id : null;
  } catch {
    return null; // not opened from the notification
  }
}

async function loadSuggestions() {
  const emails = state.meeting.attendees.map((a) => a.email).filter(Boolean);
  const result = emails.length
    ? await api.suggest(emails)
    : { contacts: {}, companies: [], internal: [], unknown: [] };
  state.suggestions = result;
  renderSuggestions();
  for (const [email, contact] of Object.entries(result.contacts)) {
    const checked = state.tag ? state.tag.contactIds.includes(contact.id) : false;
    state.contacts.set(contact.id, { contact, email, checked, touched: Boolean(state.tag) });
  }
  renderContacts();
  renderUnknown();
}

function renderSuggestions() {
  const list = $("suggestions");
  list.replaceChildren();
  const companies = state.suggestions.companies;
  $("no-suggestions").hidden = companies.length > 0;
  for (const suggestion of companies) {
    const why = [
      ...suggestion.contact_emails.map((e) => `${e} is a contact`),
      ...suggestion.domain_emails.map((e) => `${e.split("@")[1]} is its domain`),
    ];
    list.append(
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            "data-company-id": suggestion.company.id,
            "aria-pressed": "false",
            onclick: () => selectCompany(suggestion.company),
          },
          suggestion.company.name,
          el("span", { class: "why" }, why.slice(0, 2).join(" · ")),
        ),
      ),
    );
  }
}

function selectCompany(company, { keepContacts = false } = {}) {
  state.company = { id: company.id, name: company.name };
  $("current").hidden = false;
  $("current-company").textContent = company.name;
  for (const button of $("suggestions").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.companyId) === company.id));
  }
  if (!keepContacts) {
    // Contacts of the chosen company are ticked, unless the user already changed them.
    for (const entry of state.contacts.values()) {
      if (!entry.touched) entry.checked = entry.contact.company_id === company.id;
    }
  }
  renderContacts();
  $("save").disabled = false;
}

function renderContacts() {
  const list = $("contacts");
  list.replaceChildren();
  $("no-contacts").hidden = state.contacts.size > 0;
  for (const [id, entry] of state.contacts) {
    const input = el("input", {
      type: "checkbox",
      id: `contact-${id}`,
      value: id,
      checked: entry.checked,
      onchange: (event) => {
        entry.checked = event.target.checked;
        entry.touched = true;
      },
    });
    list.append(
      el("li", {}, input, " ", el("label", { for: `contact-${id}` }, entry.contact.name || entry.email, ` (${entry.email})`)),
    );
  }
}

function renderUnknown() {
  const list = $("unknown");
  list.replaceChildren();
  const unknown = state.suggestions.unknown || [];
  $("unknown-box").hidden = unknown.length === 0;
  for (const email of unknown) {
    const attendee = state.meeting.attendees.find((a) => a.email === email);
    const button = el(
      "button",
      { type: "button", class: "secondary", "data-email": email },
      "Add to CRM",
    );
    button.addEventListener("click", () => addContact(email, attendee, button).catch(failed));
    button.setAttribute("aria-label", `Add ${email} to the CRM`);
    list.append(el("li", { "data-email": email }, el("span", {}, attendee && attendee.name ? `${attendee.name} <${email}>` : email), button));
  }
}

function splitName(name, email) {
  const clean = (name || "").replace(/<.*>/, "").trim();
  if (!clean || clean.includes("@")) return { first_name: email.split("@")[0], last_name: "" };
  const parts = clean.split(/\s+/);
  return { first_name: parts.slice(0, -1).join(" ") || parts[0], last_name: parts.length > 1 ? parts.at(-1) : "" };
}

function companyNameFromDomain(domain) {
  const label = domain.split(".").slice(-2, -1)[0] || domain;
  return label.charAt(0).toUpperCase() + label.slice(1);
}

/** A4: the unknown attendee becomes a contact, and its domain a company, in one step. */
async function addContact(email, attendee, button) {
  button.disabled = true;
  const domain = email.split("@")[1];
  let company = (state.suggestions.companies.find((s) => s.domain_emails.includes(email)) || {}).company;
  if (!company) {
    try {
      company = await api.createCompany({ name: companyNameFromDomain(domain), domains: [domain] });
    } catch (error) {
      // A free-mail or already-used domain cannot make a company: the contact is still added.
      if (!(error instanceof ApiError) || error.status >= 500) throw error;
      company = null;
    }
  }
  const contact = await api.createContact({
    ...splitName(attendee && attendee.name, email),
    emails: [email],
    company_id: company ? company.id : null,
  });
  state.contacts.set(contact.id, { contact, email, checked: true, touched: true });
  state.suggestions.unknown = state.suggestions.unknown.filter((e) => e !== email);
  renderUnknown();
  if (company && !state.company) selectCompany(company, { keepContacts: true });
  else renderContacts();
  status(`${contact.name || email} added to the CRM${company ? ` (${company.name})` : ""}.`, "ok");
}

function chosenKind() {
  return document.querySelector('input[name="kind"]:checked').value;
}

async function save() {
  if (!state.company) return;
  $("save").disabled = true;
  status("Saving…");
  // The meeting may have changed since the pane opened: read it again.
  const meeting = await readAppointment(state.item);
  const contactIds = [...state.contacts.values()].filter((e) => e.checked).map((e) => e.contact.id);
  const kind = chosenKind();
  const fields = {
    kind,
    subject: meeting.subject,
    start: meeting.start.toISOString(),
    end: meeting.end.toISOString(),
    company_id: state.company.id,
    contact_ids: contactIds,
  };
  let activity = null;
  if (state.tag && state.tag.activityId) {
    activity = await api.updateActivity(state.tag.activityId, fields).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null; // deleted: make anew
      throw error;
    });
  }
  if (!activity) {
    activity = await api.createActivity({
      ...fields,
      participants: meeting.attendees.filter((a) => a.email).map((a) => ({ email: a.email, name: a.name, role: a.role })),
    });
  }
  state.tag = { companyId: state.company.id, contactIds, kind, activityId: activity.id };
  writeTag(state.props, state.tag);
  await officeCall(state.props, "saveAsync");
  const categorized = await addCategory(state.item, `CRM: ${state.company.name}`);
  // Classic Outlook keeps custom properties of a new item only once it is saved.
  await officeCall(state.item, "saveAsync").catch(() => null);
  status(`Saved: linked to ${state.company.name}${categorized ? "" : " (category not set)"}.`, "ok");
  $("save").disabled = false;
  $("save").textContent = "Update CRM";
}

function failed(error) {
  status(`Could not save: ${error.message}`, "error");
  $("save").disabled = !state.company;
}
