/*
 * Meeting-to-CRM event handlers (Outlook event-based activation and Smart Alerts).
 *
 * One classic script, no imports: classic Outlook on Windows runs this file alone in its
 * JavaScript-only runtime (no DOM, no Office.onReady, no ES modules); the other clients load it
 * from commands.html. It is written with promises rather than async/await, and fetches by
 * absolute URL (the server fills in __CRM_BASE_URL__ when it serves the file).
 *
 * Every handler ends in exactly one event.completed(...) call, errors and timeouts included:
 * a handler that never completes leaves Outlook waiting (and Smart Alerts says "taking longer").
 */
(function () {
  "use strict";

  var BASE_URL = "__CRM_BASE_URL__";
  var FETCH_TIMEOUT_MS = 3000; // well under the event time limit; the prompt is a nicety
  var MESSAGE_KEY = "crmLink";
  var COMMAND_ID = "openTaskPaneButton"; // the task pane button's control id in the manifest
  var ICON_ID = "Icon.16x16"; // a manifest image resource; only classic Windows shows it
  // The names of the custom properties the task pane writes (= graph/events.TAG_*).
  var TAG_COMPANY = "crmCompanyId";
  var TAG_ACTIVITY = "crmActivityId";

  function call(target, method) {
    var args = Array.prototype.slice.call(arguments, 2);
    return new Promise(function (resolve, reject) {
      args.push(function (result) {
        if (result.status === Office.AsyncResultStatus.Succeeded) resolve(result.value);
        else reject(new Error((result.error && result.error.message) || method + " failed"));
      });
      target[method].apply(target, args);
    });
  }

  function withTimeout(promise, ms) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        reject(new Error("timed out"));
      }, ms);
      promise.then(
        function (value) {
          clearTimeout(timer);
          resolve(value);
        },
        function (error) {
          clearTimeout(timer);
          reject(error);
        }
      );
    });
  }

  function domainOf(email) {
    var at = String(email || "").lastIndexOf("@");
    return at < 0 ? "" : String(email).slice(at + 1).toLowerCase();
  }

  function attendeeEmails(item) {
    return Promise.all([
      call(item.requiredAttendees, "getAsync"),
      call(item.optionalAttendees, "getAsync"),
    ]).then(function (lists) {
      var emails = [];
      lists[0].concat(lists[1]).forEach(function (person) {
        var email = String(person.emailAddress || "").toLowerCase();
        if (email && emails.indexOf(email) < 0) emails.push(email);
      });
      return emails;
    });
  }

  function isTagged(item) {
    return call(item, "loadCustomPropertiesAsync").then(function (props) {
      return Boolean(props.get(TAG_COMPANY) || props.get(TAG_ACTIVITY));
    });
  }

  function insight(message, contextData) {
    return {
      type: Office.MailboxEnums.ItemNotificationMessageType.InsightMessage,
      message: message,
      icon: ICON_ID,
      actions: [
        {
          actionType: Office.MailboxEnums.ActionType.ShowTaskPane,
          actionText: "Link to CRM",
          commandId: COMMAND_ID,
          // Handed to the task pane, which reads it with getInitializationContextAsync.
          contextData: contextData || {},
        },
      ],
    };
  }

  function token() {
    // Event code cannot show UI: no sign-in or consent prompt here (the task pane does that).
    var auth = (typeof OfficeRuntime !== "undefined" && OfficeRuntime.auth) || Office.auth;
    return auth.getAccessToken({ allowSignInPrompt: false, allowConsentPrompt: false });
  }

  function bestSuggestion(emails) {
    var request = token().then(function (accessToken) {
      return fetch(BASE_URL + "/api/v1/suggest", {
        method: "POST",
        headers: {
          Authorization: "Bearer " + accessToken,
          "Content-Type": "application/json",
          Accept: "application/json",
        },
        body: JSON.stringify({ emails: emails }),
      }).then(function (response) {
        if (!response.ok) throw new Error("suggest answered " + response.status);
        return response.json();
      });
    });
    return withTimeout(request, FETCH_TIMEOUT_MS).then(function (body) {
      return body.companies && body.companies.length ? body.companies[0].company : null;
    });
  }

  /** OnNewAppointmentOrganizer: invite the organizer to link the meeting. */
  function onNewAppointmentComposeHandler(event) {
    var item = Office.context.mailbox.item;
    call(
      item.notificationMessages,
      "addAsync",
      MESSAGE_KEY,
      insight("Link this meeting to a CRM company")
    )
      .catch(function () {
        return null; // e.g. the message already exists: nothing to do
      })
      .then(function () {
        event.completed();
      });
  }

  /** OnAppointmentAttendeesChanged: name the company the attendees point to. */
  function onAppointmentAttendeesChangedHandler(event) {
    var item = Office.context.mailbox.item;
    Promise.all([isTagged(item), attendeeEmails(item)])
      .then(function (found) {
        if (found[0] || found[1].length === 0) return null; // tagged already, or nobody yet
        return bestSuggestion(found[1]).then(function (company) {
          if (!company) return null;
          return call(
            item.notificationMessages,
            "replaceAsync",
            MESSAGE_KEY,
            insight("Link this meeting to " + company.name + " in the CRM?", {
              companyId: company.id,
            })
          );
        });
      })
      .catch(function () {
        return null; // offline, timed out, no token: the generic prompt stays
      })
      .then(function () {
        event.completed();
      });
  }

  /** The Smart Alert for an untagged meeting. Its "Tag it" button (cancelLabel, commandId) is
   * Mailbox 1.14; a 1.12 or 1.13 client (Outlook on Mac) gets the alert with words instead. */
  function untaggedAlert() {
    var message = "This meeting has external attendees but is not linked to a CRM company. ";
    if (Office.context.requirements.isSetSupported("Mailbox", "1.14")) {
      return {
        allowEvent: false,
        errorMessage: message + "Choose Tag it to link it before sending.",
        cancelLabel: "Tag it",
        commandId: COMMAND_ID,
      };
    }
    return {
      allowEvent: false,
      errorMessage: message + "Open Link to CRM in the ribbon to link it before sending.",
    };
  }

  /** OnAppointmentSend (Smart Alerts): external attendees and no CRM tag -> offer to tag. */
  function onAppointmentSendHandler(event) {
    var item = Office.context.mailbox.item;
    var profile = Office.context.mailbox.userProfile || {};
    var own = domainOf(profile.emailAddress);
    Promise.all([attendeeEmails(item), isTagged(item)])
      .then(function (found) {
        var external = found[0].some(function (email) {
          return domainOf(email) !== own;
        });
        if (external && !found[1]) {
          event.completed(untaggedAlert());
        } else {
          event.completed({ allowEvent: true });
        }
      })
      .catch(function () {
        // Never hold a meeting back because of our own failure.
        event.completed({ allowEvent: true });
      });
  }

  Office.actions.associate("onNewAppointmentOrganizer", onNewAppointmentComposeHandler);
  Office.actions.associate(
    "onAppointmentAttendeesChanged",
    onAppointmentAttendeesChangedHandler
  );
  Office.actions.associate("onAppointmentSend", onAppointmentSendHandler);
})();
