// The CRM JSON API, same origin as the pane. Every request carries the token from auth.js.
import { getToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

async function request(method, path, body) {
  const token = await getToken();
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  suggest: (emails) => request("POST", "/suggest", { emails }),
  searchCompanies: (q, limit = 8) =>
    request("GET", `/companies?${new URLSearchParams({ q, limit: String(limit) })}`),
  company: (id) => request("GET", `/companies/${id}`),
  createCompany: (fields) => request("POST", "/companies", fields),
  contact: (id) => request("GET", `/contacts/${id}`),
  createContact: (fields) => request("POST", "/contacts", fields),
  activity: (id) => request("GET", `/activities/${id}`),
  activityForEvent: (eventId) =>
    request("GET", `/activities/by-event?${new URLSearchParams({ event_id: eventId })}`),
  createActivity: (fields) => request("POST", "/activities", fields),
  updateActivity: (id, fields) => request("PATCH", `/activities/${id}`, fields),
  activities: (params) => request("GET", `/activities?${new URLSearchParams(params)}`),
  users: () => request("GET", "/users"),
};
