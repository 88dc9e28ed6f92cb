// Gatehouse local accounts: the browser's side of passkeys. A form with
// data-passkey="create" or "get" carries the ceremony's options (JSON) in
// data-options; on submit this script asks the browser for a passkey,
// writes the answer as JSON into the form's "credential" field and posts
// the form. No other request is made.
(function () {
  "use strict";

  function fromB64u(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var o = { type: d.type, id: fromB64u(d.id) };
      if (d.transports) o.transports = d.transports;
      return o;
    });
  }

  function creationOptions(pk) {
    pk.challenge = fromB64u(pk.challenge);
    pk.user.id = fromB64u(pk.user.id);
    if (pk.excludeCredentials) pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return pk;
  }

  function requestOptions(pk) {
    pk.challenge = fromB64u(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = descriptors(pk.allowCredentials);
    return pk;
  }

  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = toB64u(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function say(form, text) {
    var el = form.querySelector("[data-passkey-error]");
    if (el) {
      el.textContent = text;
      el.hidden = !text;
    }
  }

  function run(form) {
    var kind = form.getAttribute("data-passkey");
    var opts = JSON.parse(form.getAttribute("data-options"));
    var pk = opts.publicKey;
    var p = kind === "create"
      ? navigator.credentials.create({ publicKey: creationOptions(pk) })
      : navigator.credentials.get({ publicKey: requestOptions(pk) });
    return p.then(function (cred) {
      if (!cred) throw new Error("no passkey");
      form.querySelector('input[name="credential"]').value = encode(cred);
      form.submit();
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "This browser does not support passkeys.");
      var b = form.querySelector("button");
      if (b) b.disabled = true;
      return;
    }
    var busy = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      say(form, "");
      run(form).catch(function (err) {
        busy = false;
        say(form, err && err.name === "NotAllowedError"
          ? "The passkey request was cancelled or timed out. Press the button to try again."
          : err && err.name === "InvalidStateError"
          ? "This passkey is already registered to your account."
          : "The passkey did not work. Press the button to try again.");
      });
    });
  });
})();
