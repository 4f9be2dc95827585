// The opinion editor: saves the draft a few seconds after each change (with the revision it
// started from, so edits from another tab are never overwritten) and shows a preview of what
// the patient will read. Text is only ever set with textContent.
(function () {
  "use strict";
  var form = document.getElementById("opinion-form");
  if (!form) { return; }
  var caseId = form.getAttribute("data-case-id");
  var status = document.getElementById("autosave-status");
  var revision = document.getElementById("opinion-revision");
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var timer = null;
  var saving = false;
  var again = false;

  function value(name) { return form.elements[name].value; }

  function body() {
    return {
      summary: value("summary"),
      findings: value("findings"),
      impression: value("impression"),
      answers: value("answers"),
      recommendations: {
        treatment_options: value("treatment_options"),
        urgency: value("urgency") || null,
        further_tests: value("further_tests")
      },
      limitations: value("limitations"),
      revision: revision.value ? parseInt(revision.value, 10) : null
    };
  }

  function say(text) { status.textContent = text; }

  function save() {
    if (saving) { again = true; return; }
    saving = true;
    say("Saving…");
    fetch("/api/cases/" + caseId + "/opinion", {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify(body())
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (result.ok) {
        revision.value = result.data.revision;
        say("Draft saved at " + new Date().toLocaleTimeString());
        if (window.portalSession) { window.portalSession.touched(); }
      } else {
        say(result.data.detail || "The draft could not be saved.");
      }
    }).catch(function () {
      say("Not saved: no connection. Your text is still here; it will be saved when you type again.");
    }).then(function () {
      saving = false;
      if (again) { again = false; save(); }
    });
  }

  form.addEventListener("input", function () {
    say("Unsaved changes");
    clearTimeout(timer);
    timer = setTimeout(save, 2000);
    renderPreview();
  });

  var preview = document.getElementById("opinion-preview");
  function renderPreview() {
    if (!preview) { return; }
    var sections = [
      ["Summary", value("summary")],
      ["Imaging findings", value("findings")],
      ["Impression / diagnosis", value("impression")],
      ["Answers to your questions", value("answers")],
      ["Treatment options", value("treatment_options")],
      ["Urgency", value("urgency")],
      ["Further tests", value("further_tests")],
      ["Limitations", value("limitations")]
    ];
    preview.replaceChildren();
    sections.forEach(function (section) {
      var heading = document.createElement("h3");
      heading.textContent = section[0];
      var text = document.createElement("p");
      text.className = "prose";
      text.textContent = section[1] || "—";
      preview.append(heading, text);
    });
  }
  renderPreview();
})();
