// A stand-in for the Outlook host, injected before any page script. It plays the parts of
// Office.js the pane and the event handlers use and records every call in window.__office.calls.
// The test configures it through window.__OFFICE_CONFIG__ (set by an earlier init script):
// {mode: "compose"|"read", subject, start, end, required: [{emailAddress, displayName}],
//  optional: [...], user: {emailAddress, displayName}, token, tokenError, customProperties: {},
//  naa: false, categoryNeedsMaster: false}
(() => {
  const cfg = window.__OFFICE_CONFIG__ || {};
  const state = {
    calls: [],
    properties: { ...(cfg.customProperties || {}) }, // what the pane has set
    saved: { ...(cfg.customProperties || {}) }, // what was saved (customProperties.saveAsync)
    categories: [],
    master: [],
    notifications: {},
    handlers: {},
  };
  window.__office = state;

  const ok = (value) => ({ status: "succeeded", value });
  const failed = (message) => ({ status: "failed", error: { message, code: 9000 } });
  const plain = (value) => JSON.parse(JSON.stringify(value === undefined ? null : value));

  // An Office-style async method: callback last; answered on a later task, like the host.
  function method(name, impl) {
    return (...args) => {
      const callback = typeof args.at(-1) === "function" ? args.pop() : null;
      state.calls.push({ name, args: plain(args) });
      const result = impl ? impl(...args) : ok(undefined);
      if (callback) setTimeout(() => callback(result), 0);
    };
  }

  const customProperties = {
    get: (key) => state.properties[key],
    set: (key, value) => {
      state.calls.push({ name: "customProperties.set", args: [key, String(value)] });
      state.properties[key] = String(value);
    },
    remove: (key) => delete state.properties[key],
    getAll: () => ({ ...state.properties }),
    saveAsync: method("customProperties.saveAsync", () => {
      state.saved = { ...state.properties };
      return ok();
    }),
  };

  const people = (list) => (list || []).map((p) => ({ recipientType: "other", ...p }));
  const compose = cfg.mode !== "read";
  const getter = (name, value) => ({ getAsync: method(`${name}.getAsync`, () => ok(value())) });

  const item = {
    itemType: "appointment",
    loadCustomPropertiesAsync: method("loadCustomPropertiesAsync", () => ok(customProperties)),
    notificationMessages: {
      addAsync: method("notificationMessages.addAsync", (key, details) => {
        if (state.notifications[key]) return failed("DuplicateNotificationKey");
        state.notifications[key] = plain(details);
        return ok();
      }),
      replaceAsync: method("notificationMessages.replaceAsync", (key, details) => {
        state.notifications[key] = plain(details);
        return ok();
      }),
      removeAsync: method("notificationMessages.removeAsync", (key) => {
        delete state.notifications[key];
        return ok();
      }),
    },
  };
  if (compose) {
    Object.assign(item, {
      subject: getter("subject", () => cfg.subject || ""),
      start: getter("start", () => new Date(cfg.start)),
      end: getter("end", () => new Date(cfg.end)),
      requiredAttendees: getter("requiredAttendees", () => people(cfg.required)),
      optionalAttendees: getter("optionalAttendees", () => people(cfg.optional)),
      categories: {
        addAsync: method("categories.addAsync", (names) => {
          if (cfg.categoryNeedsMaster && !names.every((n) => state.master.includes(n))) {
            return failed("The category is not in the master list");
          }
          state.categories.push(...names.filter((n) => !state.categories.includes(n)));
          return ok();
        }),
        getAsync: method("categories.getAsync", () =>
          ok(state.categories.map((displayName) => ({ displayName, color: "Preset7" }))),
        ),
        removeAsync: method("categories.removeAsync", (names) => {
          state.categories = state.categories.filter((n) => !names.includes(n));
          return ok();
        }),
      },
      saveAsync: method("saveAsync", () => ok("AAMkADstub=")),
      getInitializationContextAsync: method("getInitializationContextAsync", () =>
        cfg.initializationContext ? ok(cfg.initializationContext) : failed("no context"),
      ),
    });
  } else {
    Object.assign(item, {
      subject: cfg.subject || "",
      start: new Date(cfg.start),
      end: new Date(cfg.end),
      requiredAttendees: people(cfg.required),
      optionalAttendees: people(cfg.optional),
      organizer: cfg.user,
      itemId: cfg.itemId, // EWS form, as Outlook gives it in read mode
    });
  }

  window.Office = {
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    MailboxEnums: {
      ItemNotificationMessageType: {
        InsightMessage: "insightMessage",
        InformationalMessage: "informationalMessage",
        ErrorMessage: "errorMessage",
      },
      ActionType: { ShowTaskPane: "showTaskPane" },
      CategoryColor: { Preset7: "Preset7" },
      RestVersion: { v1_0: "v1.0", v2_0: "v2.0", Beta: "beta" },
    },
    context: {
      requirements: {
        isSetSupported: (name, version) => {
          if (name === "NestedAppAuth") return Boolean(cfg.naa);
          // cfg.mailbox: the highest Mailbox requirement set the simulated client supports.
          if (name === "Mailbox" && cfg.mailbox && version) {
            const [major, minor] = version.split(".").map(Number);
            const [hasMajor, hasMinor] = String(cfg.mailbox).split(".").map(Number);
            return major < hasMajor || (major === hasMajor && minor <= hasMinor);
          }
          return true;
        },
      },
      mailbox: {
        item,
        userProfile: cfg.user || { emailAddress: "linda@northwind.example", displayName: "Linda" },
        // An EWS id becomes the REST (Graph) id by swapping the URL-unsafe base64 characters.
        convertToRestId: (itemId, version) => {
          state.calls.push({ name: "convertToRestId", args: [itemId, version] });
          return itemId.replace(/\//g, "-").replace(/\+/g, "_");
        },
        masterCategories: {
          addAsync: method("masterCategories.addAsync", (list) => {
            state.master.push(...list.map((c) => c.displayName));
            return ok();
          }),
        },
      },
    },
    actions: {
      associate: (name, handler) => {
        state.handlers[name] = handler;
      },
    },
    onReady: (callback) =>
      Promise.resolve().then(() => {
        const info = { host: "Outlook", platform: "OfficeOnline" };
        if (callback) callback(info);
        return info;
      }),
  };

  window.OfficeRuntime = {
    auth: {
      getAccessToken: (options) => {
        state.calls.push({ name: "getAccessToken", args: [plain(options)] });
        return cfg.tokenError ? Promise.reject(new Error(cfg.tokenError)) : Promise.resolve(cfg.token);
      },
    },
  };
})();
