// Entry point of the task pane: decides compose or read mode once Office is ready.
import { startCompose } from "./compose.js";
import { status } from "./dom.js";
import { currentItem, isCompose } from "./office.js";
import { startRead } from "./read.js";

async function main() {
  const item = currentItem();
  if (!item) {
    status("Open a meeting in Outlook to link it to the CRM.");
    return;
  }
  if (isCompose(item)) await startCompose(item);
  else await startRead(item);
}

function done() {
  document.getElementById("app").setAttribute("aria-busy", "false");
}

if (typeof Office === "undefined") {
  // office.js did not load (offline, or blocked): say so rather than fail silently.
  status("Outlook's add-in library could not be loaded. Check the connection and reopen.", "error");
  done();
} else {
  Office.onReady(() =>
    main()
      .catch((error) => status(`Something went wrong: ${error.message}`, "error"))
      .finally(done),
  );
}
