// Uploads on the case page: our own small tus 1.0.0 client (creation, creation-with-upload,
// checksum). A few files go up at once; each one continues from the server's offset after a
// pause, a dropped connection or a page reload. The server decides what it accepts and says why
// it refuses a file; this page only shows it. Text is only ever set with textContent.
// How it works and how it is tested: docs/browser.md. Its words come from the page, in the
// reader's language (#words-upload, made by portal/web/script_words.py).
(function () {
  "use strict";
  var root = document.getElementById("uploader");
  if (!root) { return; }

  var ENDPOINT = "/api/uploads";
  var LANES = 3;                  // files in flight at once (measured: docs/browser.md)
  var STALL_MS = 30000;           // no progress for this long: the connection is gone
  var ANSWER_MS = 2 * 60000;      // a file sent whole with its creation is ingested before it
  var RESULT_MS = 60 * 60000;     // a 2 GB CD's import job may take a while after its last byte
  var MAX_DELAY_MS = 30000;       // backoff between retries: 1, 2, 4 … 30 s
  var STORE_PREFIX = "portal.upload.";
  var CLUTTER = /(^|\/)(\.DS_Store|Thumbs\.db|desktop\.ini|\._[^/]*)$|(^|\/)__MACOSX\//i;
  var WORDS = JSON.parse(document.getElementById("words-upload").textContent);
  var LANGUAGE = document.documentElement.lang || "en";
  var PLURALS = new Intl.PluralRules(LANGUAGE);
  var NUMBERS = new Intl.NumberFormat(LANGUAGE);

  var caseId = root.getAttribute("data-case-id");
  var chunkBytes = parseInt(root.getAttribute("data-chunk-bytes"), 10) || 8 * 1024 * 1024;
  var csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  // Web Crypto exists only in secure contexts (HTTPS, localhost): without it there is no chunk
  // checksum and no resuming after a reload, because a file's name is never stored in clear.
  var subtle = window.isSecureContext && window.crypto && window.crypto.subtle;
  var ui = {
    pickFiles: document.getElementById("pick-files"),
    pickFolder: document.getElementById("pick-folder"),
    pause: document.getElementById("pause-uploads"),
    resume: document.getElementById("resume-uploads"),
    overallBox: root.querySelector(".progress-overall"),
    overall: document.getElementById("overall-progress"),
    overallLabel: document.getElementById("overall-label"),
    list: document.getElementById("upload-list"),
    status: document.getElementById("upload-status"),
    showFiles: document.getElementById("show-files")
  };

  var items = [];           // every file of the current batch
  var queue = [];           // items waiting for a lane
  var inFlight = new Set(); // XHRs to abort on pause
  var lanes = 0;
  var busy = false;
  var paused = false;
  var held = null;          // while paused: resolved by Resume
  var retry = null;         // while waiting to retry: { promise, now }
  var failures = 0;         // consecutive failed attempts, for the backoff
  var frame = 0;
  var dirty = new Set();
  var lastTouch = 0;
  var rows = 0;

  // Why an attempt stopped, and so what happens next.
  function Retry(why) { this.why = why; }    // offline, stalled, server busy: wait, resume
  function Resync() {}                       // our offset is not the server's: HEAD, go on
  function Restart() {}                      // the upload is gone (404/410): create it again
  function Refused(message) { this.message = message; }  // the server said no: show why

  // -- choosing files -------------------------------------------------------------------

  function pathOf(file) { return file.webkitRelativePath || file.name; }

  function wanted(file) { return file.size > 0 && !CLUTTER.test(pathOf(file)); }

  function choose(input) {
    var files = Array.prototype.slice.call(input.files);
    input.value = "";  // choosing the same files again (after a reload) must fire "change"
    var queued = new Set(busy ? items.filter(unfinished).map(identity) : []);
    var fresh = files.filter(function (file) {
      return wanted(file) && !queued.has(identity(file));
    });
    if (!fresh.length) {
      announce(t("nothing"));
      return;
    }
    if (!busy) { startBatch(); }
    fresh.sort(function (a, b) { return pathOf(a) < pathOf(b) ? -1 : 1; });
    fresh.forEach(function (file) {
      var item = newItem(file);
      items.push(item);
      queue.push(item);
      ui.list.appendChild(item.row);
    });
    var left = files.length - fresh.length;
    announce(t("uploading", { files: n("files", items.length), size: size(totalBytes()) }) +
      (left ? " " + n("left_out", left) : ""));
    ui.overallBox.hidden = false;
    buttons();
    changed();
    pump();
  }

  function identity(item) {
    var file = item.file || item;
    return [pathOf(file), file.size, file.lastModified].join("\n");
  }

  function startBatch() {
    items.forEach(function (item) { item.row.remove(); });
    items = [];
    busy = true;
    root.setAttribute("data-state", "uploading");
    if (ui.showFiles) { ui.showFiles.hidden = true; }
  }

  function newItem(file) {
    var item = {
      file: file, path: pathOf(file), size: file.size, key: undefined, url: null,
      offset: 0, sent: 0, state: "queued", note: "", details: []
    };
    rows += 1;
    item.row = document.createElement("li");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.id = "upload-name-" + rows;
    name.textContent = item.path;
    item.bar = document.createElement("progress");
    item.bar.max = Math.max(item.size, 1);
    item.bar.value = 0;
    item.bar.setAttribute("aria-labelledby", name.id);
    item.text = document.createElement("span");
    item.text.className = "upload-state";
    item.row.append(name, item.bar, item.text);
    return item;
  }

  // -- lanes ----------------------------------------------------------------------------

  function pump() {
    while (lanes < LANES && queue.length) {
      var item = queue.shift();
      lanes += 1;
      upload(item).catch(function (error) {
        settle(item, "failed", unreadable(error));
      }).then(function () {
        lanes -= 1;
        changed();
        pump();
      });
    }
    if (busy && !lanes && !queue.length) { finishBatch(); }
  }

  async function upload(item) {
    var resyncs = 0;
    var restarts = 0;
    for (;;) {
      await whileHeld();
      try {
        await transfer(item);
        return;
      } catch (error) {
        if (error instanceof Refused) { return settle(item, "failed", error.message); }
        if (!(error instanceof Retry || error instanceof Resync || error instanceof Restart)) {
          return settle(item, "failed", unreadable(error));
        }
        if (error instanceof Restart) {
          if (restarts++ === 3) { return settle(item, "failed", t("lost")); }
          forget(item);
          item.url = null;
          item.offset = item.sent = 0;
          continue;
        }
        if (error instanceof Resync && resyncs++ < 3) { continue; }
        if (paused) { continue; }
        setState(item, "waiting");
        await retryLater(error);
        resyncs = 0;
      }
    }
  }

  // One attempt: find where the server is, create the upload if there is none, send what is
  // missing, then read what the server made of the file.
  async function transfer(item) {
    setState(item, "uploading");
    if (item.key === undefined) {
      item.key = await storageKey(item);
      item.url = recall(item.key);
    }
    if (item.url) { await askOffset(item); }
    if (!item.url) { await create(item); }
    while (item.offset < item.size) { await sendChunk(item); }
    await awaitResult(item);
  }

  async function askOffset(item) {
    var answer = await request("HEAD", item.url, {});
    if (answer.status !== 200) { throw failure(answer, true); }
    item.offset = item.sent = number(answer.header("Upload-Offset"));
  }

  async function create(item) {
    var headers = {
      "Upload-Length": String(item.size),
      "Upload-Metadata": "case_id " + base64(encode(caseId)) +
        ",filename " + base64(encode(item.path))
    };
    // A file that fits in one chunk goes with its creation: one round trip instead of two.
    var whole = item.size <= chunkBytes;
    var body = whole ? await chunkBody(item, 0, item.size, headers) : null;
    var answer = await request("POST", ENDPOINT, headers, body, progressFrom(item, 0), whole);
    if (answer.status !== 201) { throw failure(answer, false); }
    item.url = answer.header("Location");
    item.offset = item.sent = number(answer.header("Upload-Offset"));
    if (item.offset < item.size) { remember(item, answer.header("Upload-Expires")); }
  }

  async function sendChunk(item) {
    var start = item.offset;
    var end = Math.min(start + chunkBytes, item.size);
    var headers = { "Upload-Offset": String(start) };
    var body = await chunkBody(item, start, end, headers);
    var last = end === item.size;
    var answer = await request("PATCH", item.url, headers, body, progressFrom(item, start), last);
    if (answer.status !== 204) { throw failure(answer, true); }
    item.offset = item.sent = number(answer.header("Upload-Offset"));
    if (item.offset < item.size) { remember(item, answer.header("Upload-Expires")); }
  }

  // The body is the Blob slice, not the bytes read for the checksum: the browser streams it
  // from disk, and the read buffer can go at once.
  async function chunkBody(item, start, end, headers) {
    var slice = item.file.slice(start, end);
    headers["Content-Type"] = "application/offset+octet-stream";
    if (subtle) {
      var digest = await subtle.digest("SHA-256", await slice.arrayBuffer());
      headers["Upload-Checksum"] = "sha256 " + base64(new Uint8Array(digest));
    }
    return slice;
  }

  // The last PATCH answers as soon as its bytes are stored; the server then ingests the file
  // (a ZIP entry by entry) in a job of its own. Ask how far it is until it is done.
  async function awaitResult(item) {
    setState(item, "checking");
    var deadline = Date.now() + RESULT_MS;
    for (var wait = 100; Date.now() < deadline; wait = Math.min(wait * 2, 2000)) {
      var answer = await request("GET", item.url, { Accept: "application/json" });
      if (answer.status !== 200) { throw failure(answer, true); }
      var progress = JSON.parse(answer.text);
      if (progress.status === "complete" && progress.result) {
        forget(item);
        return showResult(item, progress.result);
      }
      if (progress.status === "failed") {
        forget(item);
        return settle(item, "failed", progress.failure || t("server_failed"));
      }
      if (progress.entries_total) {
        item.entries = t("entries", {
          done: NUMBERS.format(progress.entries_done), total: NUMBERS.format(progress.entries_total)
        });
        changed(item);
      }
      await sleep(wait);
    }
    settle(item, "failed", t("still_checking"));
  }

  function failure(answer, onUpload) {
    var status = answer.status;
    if (onUpload && (status === 404 || status === 410)) { return new Restart(); }
    if (onUpload && status === 409) { return new Resync(); }
    if (status === 460 || status === 423 || status === 429 || status >= 500) {
      return new Retry("busy");  // 460: checksum mismatch, the chunk is sent again
    }
    if (status === 401) {
      return new Refused(t("signed_out"));
    }
    return new Refused(detailOf(answer) || t("refused", { status: status }));
  }

  function unreadable(error) {
    if (error && (error.name === "NotReadableError" || error.name === "NotFoundError")) {
      return t("unreadable");
    }
    window.console.error(error);
    return t("broken");
  }

  // -- requests -------------------------------------------------------------------------

  // Any HTTP answer resolves; a lost connection, a stall or a pause rejects with Retry. The
  // answer to the last bytes of a file waits for its ingest, which takes a while for a big ZIP.
  function request(method, url, headers, body, onProgress, last) {
    return new Promise(function (resolve, reject) {
      if (paused) { return reject(new Retry("paused")); }
      var xhr = new XMLHttpRequest();
      var timer = 0;
      var why = "paused";
      function watch(ms) {
        clearTimeout(timer);
        timer = setTimeout(function () { why = "offline"; xhr.abort(); }, ms);
      }
      function done() { clearTimeout(timer); inFlight.delete(xhr); }
      xhr.open(method, url);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      xhr.setRequestHeader("X-CSRF-Token", csrfToken);
      Object.keys(headers).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
      if (body) {
        xhr.upload.onprogress = function (event) { watch(STALL_MS); onProgress(event.loaded); };
        xhr.upload.onload = function () { watch(last ? ANSWER_MS : STALL_MS); };
      }
      xhr.onload = function () {
        done();
        if (xhr.status < 500 && xhr.status !== 429 && xhr.status !== 423) { connected(); }
        resolve({
          status: xhr.status,
          text: xhr.responseText,
          header: function (name) { return xhr.getResponseHeader(name); }
        });
      };
      xhr.onerror = function () { done(); reject(new Retry("offline")); };
      xhr.onabort = function () { done(); reject(new Retry(why)); };
      inFlight.add(xhr);
      watch(STALL_MS);
      xhr.send(body);
    });
  }

  function progressFrom(item, start) {
    return function (loaded) {
      item.sent = Math.min(start + loaded, item.size);
      changed(item);
      touchSession();
    };
  }

  function detailOf(answer) {
    try { return JSON.parse(answer.text).detail; } catch (ignored) { return ""; }
  }

  // -- waiting: backoff, the online event, pause and resume -----------------------------

  // Every lane that lost the connection waits on the same timer; the "online" event or Resume
  // cuts the wait short.
  function retryLater(error) {
    if (!retry) {
      var delay = Math.min(1000 * Math.pow(2, failures), MAX_DELAY_MS);
      retry = gate();
      var timer = setTimeout(retry.now, delay);
      retry.promise.then(function () { clearTimeout(timer); retry = null; });
      failures += 1;
      root.setAttribute("data-state", "waiting");
      announce(error.why === "offline" || !navigator.onLine
        ? t("offline")
        : t("busy", { seconds: Math.round(delay / 1000) }));
    }
    return retry.promise;
  }

  function connected() {
    failures = 0;
    if (root.getAttribute("data-state") === "waiting") {
      root.setAttribute("data-state", "uploading");
      announce(t("back"));
    }
  }

  // A promise and the function that resolves it.
  function gate() {
    var opened = { promise: null, now: null };
    opened.promise = new Promise(function (resolve) { opened.now = resolve; });
    return opened;
  }

  async function whileHeld() {
    while (paused) { await held.promise; }
  }

  function pause() {
    if (paused || !busy) { return; }
    paused = true;
    held = gate();
    inFlight.forEach(function (xhr) { xhr.abort(); });
    items.filter(unfinished).forEach(function (item) {
      if (item.state !== "queued") { setState(item, "paused"); }
    });
    root.setAttribute("data-state", "paused");
    announce(t("paused"));
    buttons();
  }

  function resume() {
    if (!paused) { return; }
    paused = false;
    held.now();
    if (retry) { retry.now(); }
    root.setAttribute("data-state", "uploading");
    announce(t("again"));
    buttons();
  }

  // -- remembering uploads across reloads (tus fingerprints) ----------------------------
  // Keyed by a SHA-256 of case, path, size and date: no file name is stored in clear.

  async function storageKey(item) {
    if (!subtle) { return null; }
    var text = [caseId, item.path, item.size, item.file.lastModified].join("\n");
    var digest = await subtle.digest("SHA-256", encode(text));
    return STORE_PREFIX + Array.prototype.map.call(new Uint8Array(digest), function (byte) {
      return (byte + 256).toString(16).slice(1);
    }).join("");
  }

  function recall(key) {
    var saved = key && read(key);
    return saved && saved.expires > Date.now() ? saved.url : null;
  }

  function remember(item, expires) {
    var until = Date.parse(expires || "") || Date.now() + 24 * 3600 * 1000;
    if (item.key) { write(item.key, { url: item.url, expires: until }); }
  }

  function forget(item) { if (item.key) { write(item.key, null); } }

  function read(key) {
    try { return JSON.parse(window.localStorage.getItem(key)); } catch (ignored) { return null; }
  }

  function write(key, value) {
    try {
      if (value) { window.localStorage.setItem(key, JSON.stringify(value)); }
      else { window.localStorage.removeItem(key); }
    } catch (ignored) { /* storage full or disabled: resuming after a reload is a bonus */ }
  }

  function dropExpired() {
    try {
      Object.keys(window.localStorage).forEach(function (key) {
        if (key.indexOf(STORE_PREFIX) === 0 && !recall(key)) { write(key, null); }
      });
    } catch (ignored) { /* storage disabled */ }
  }

  // -- results --------------------------------------------------------------------------

  function showResult(item, result) {
    var accepted = result.accepted || [];
    var rejected = result.rejected || [];
    var archives = result.archives || [];
    if (archives.length) {
      var words = (rejected.length
        ? t("archive_result_both", { accepted: n("accepted", accepted.length), rejected: n("rejected", rejected.length) })
        : t("archive_result", { accepted: n("accepted", accepted.length) })) + " ";
      item.details = rejected.map(function (r) { return r.filename + ": " + r.reason; });
      archives.forEach(function (report) { words += completeness(report); });
      return settle(item, accepted.length ? "accepted" : "rejected", words.trim());
    }
    if (accepted.length) {
      var file = accepted[0];
      var kind = WORDS["kind_" + file.kind] || file.kind;
      return settle(item, "accepted", t(file.duplicate ? "accepted_again" : "accepted_as", { kind: kind }));
    }
    var reason = rejected.length ? rejected[0].reason : t("nothing_used");
    return settle(item, "rejected", t("not_accepted", { reason: reason }));
  }

  function completeness(report) {
    if (!report.dicomdir_present) { return t("no_dicomdir"); }
    var arrived = report.referenced - report.missing.length;
    var words = t("dicomdir_arrived", {
      arrived: NUMBERS.format(arrived), listed: NUMBERS.format(report.referenced)
    });
    if (report.missing.length) {
      var names = report.missing.slice(0, 20).join(", ");
      words += " " + (report.missing.length > 20
        ? t("missing_more", { names: names, more: NUMBERS.format(report.missing.length - 20) })
        : t("missing", { names: names }));
    }
    return words + " ";
  }

  function settle(item, state, note) {
    item.note = note;
    item.sent = item.size;
    setState(item, state);
  }

  function unfinished(item) {
    return ["accepted", "rejected", "failed"].indexOf(item.state) < 0;
  }

  function finishBatch() {
    busy = false;
    paused = false;
    root.setAttribute("data-state", "done");
    var accepted = items.filter(function (item) { return item.state === "accepted"; }).length;
    var others = items.length - accepted;
    announce(others
      ? t("done_both", { accepted: n("accepted", accepted), rejected: n("rejected", others) })
      : t("done", { accepted: n("accepted", accepted) }));
    buttons();
    changed();
    if (accepted) { refreshFileList(); }
  }

  // The new files appear in the page's own file list and study index, fetched again.
  function refreshFileList() {
    fetch(window.location.pathname, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      ["studies", "files"].forEach(function (id) {
        var next = fresh.getElementById(id);
        var current = document.getElementById(id);
        if (next && current) { current.replaceWith(next); }
        else if (next) { document.getElementById("files").before(next); }
      });
      root.setAttribute("data-refreshed", "true");
    }).catch(function () {
      if (ui.showFiles) { ui.showFiles.hidden = false; }
    });
  }

  // -- drawing --------------------------------------------------------------------------

  function setState(item, state) {
    item.state = state;
    changed(item);
  }

  function changed(item) {
    if (item) { dirty.add(item); }
    if (!frame) { frame = window.requestAnimationFrame(draw); }
  }

  function draw() {
    frame = 0;
    dirty.forEach(drawItem);
    dirty.clear();
    var total = totalBytes();
    var sent = items.reduce(function (sum, item) { return sum + item.sent; }, 0);
    var finished = items.filter(function (item) { return !unfinished(item); }).length;
    ui.overall.value = total ? Math.min(100, (sent * 100) / total) : 0;
    ui.overallLabel.textContent = t("overall", {
      finished: NUMBERS.format(finished), files: n("files", items.length),
      sent: size(sent), total: size(total)
    });
  }

  function drawItem(item) {
    item.row.className = item.state;
    item.row.setAttribute("data-state", item.state);
    item.bar.value = item.sent;
    item.text.textContent = describe(item);
    if (item.details.length && !item.row.querySelector(".upload-details")) {
      var list = document.createElement("ul");
      list.className = "upload-details";
      item.details.forEach(function (line) {
        var entry = document.createElement("li");
        entry.textContent = line;
        list.appendChild(entry);
      });
      item.row.appendChild(list);
    }
  }

  function describe(item) {
    switch (item.state) {
      case "queued": return t("queued");
      case "uploading": return t("progress", {
        percent: percent(item.sent, item.size), sent: size(item.sent), total: size(item.size)
      });
      case "waiting": return t("waiting");
      case "paused": return t("paused_at", { percent: percent(item.sent, item.size) });
      case "checking": return item.entries ?
        t("importing", { entries: item.entries }) : t("checking");
      default: return item.note;
    }
  }

  function buttons() {
    ui.pause.disabled = !busy || paused;
    ui.resume.disabled = !paused;
  }

  function announce(text) { ui.status.textContent = text; }

  function touchSession() {
    var now = Date.now();
    if (now - lastTouch > 5000 && window.portalSession) {
      lastTouch = now;
      window.portalSession.touched();
    }
  }

  // -- small helpers --------------------------------------------------------------------

  function totalBytes() {
    return items.reduce(function (sum, item) { return sum + item.size; }, 0);
  }

  function number(value) { return parseInt(value, 10) || 0; }

  function encode(text) { return new TextEncoder().encode(text); }

  function base64(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return window.btoa(binary);
  }

  // Words: fill a message's %(name)s placeholders; plural messages by the count's category.
  function fill(text, values) {
    Object.keys(values || {}).forEach(function (key) {
      text = text.split("%(" + key + ")s").join(String(values[key]));
    });
    return text;
  }

  function t(key, values) { return fill(WORDS[key], values); }

  function n(key, count, values) {
    var forms = WORDS[key];
    var form = forms[PLURALS.select(count)] || forms.other;
    return fill(form, Object.assign({ num: NUMBERS.format(count) }, values));
  }

  function percent(part, whole) {
    return new Intl.NumberFormat(LANGUAGE, { style: "percent", maximumFractionDigits: 0 })
      .format(whole ? Math.floor((part * 100) / whole) / 100 : 0);
  }

  function size(bytes) {
    if (bytes < 1000) { return t("unit_b", { size: NUMBERS.format(bytes) }); }
    var units = ["unit_kb", "unit_mb", "unit_gb", "unit_tb"];
    var value = bytes;
    var unit = -1;
    do { value /= 1000; unit += 1; } while (value >= 1000 && unit < units.length - 1);
    var digits = value < 10 ? 2 : 1;
    var shown = new Intl.NumberFormat(LANGUAGE, {
      minimumFractionDigits: digits, maximumFractionDigits: digits
    }).format(value);
    return t(units[unit], { size: shown });
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  ui.pickFiles.addEventListener("change", function () { choose(ui.pickFiles); });
  ui.pickFolder.addEventListener("change", function () { choose(ui.pickFolder); });
  ui.pause.addEventListener("click", pause);
  ui.resume.addEventListener("click", resume);
  window.addEventListener("online", function () { if (retry) { retry.now(); } });
  window.addEventListener("beforeunload", function (event) {
    if (busy && !paused) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  dropExpired();
})();
