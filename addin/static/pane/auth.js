// Where the pane's API token comes from.
// 1. Nested app authentication (MSAL, recommended by Microsoft) where Outlook supports it;
// 2. otherwise Office SSO (getAccessToken), which returns a token for our API directly.
// Legacy Exchange tokens are switched off in Microsoft 365, so there is no third way.

let cached = null; // {token, expires}: reused until a minute before it runs out
let nestedApp = null;
let config = null;

async function loadConfig() {
  if (!config) {
    const response = await fetch("/addin/config.json", { credentials: "omit" });
    config = await response.json();
  }
  return config;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error("could not load MSAL"));
    document.head.append(script);
  });
}

function naaSupported() {
  const requirements = Office.context && Office.context.requirements;
  return Boolean(requirements && requirements.isSetSupported("NestedAppAuth", "1.1"));
}

async function viaNestedAppAuth() {
  const { clientId, apiScope, authority } = await loadConfig();
  if (!nestedApp) {
    // The UMD build defines window.msal; its URL is content-hashed, given by the page.
    const src = document.querySelector('meta[name="crm-msal-src"]').content;
    if (!window.msal) await loadScript(src);
    nestedApp = await window.msal.createNestablePublicClientApplication({
      auth: { clientId, authority },
    });
  }
  const request = { scopes: [apiScope] };
  let result;
  try {
    result = await nestedApp.acquireTokenSilent(request);
  } catch {
    // Consent or sign-in is needed: only a popup can ask the user.
    result = await nestedApp.acquireTokenPopup(request);
  }
  return { token: result.accessToken, expires: result.expiresOn ? +result.expiresOn : 0 };
}

async function viaOfficeSso() {
  const options = { allowSignInPrompt: true, allowConsentPrompt: true, forMSGraphAccess: false };
  const auth = (window.OfficeRuntime && window.OfficeRuntime.auth) || Office.auth;
  const token = await auth.getAccessToken(options);
  return { token, expires: 0 };
}

/** A bearer token for /api/v1. */
export async function getToken() {
  const now = Date.now();
  if (cached && cached.expires - 60_000 > now) return cached.token;
  cached = naaSupported() ? await viaNestedAppAuth() : await viaOfficeSso();
  // SSO tokens are cached by Office itself; keep ours only for this page's lifetime.
  if (cached.expires === 0) cached.expires = now + 5 * 60_000;
  return cached.token;
}
