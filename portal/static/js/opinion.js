// The opinion editor: saves the draft a few seconds after each change (with the revision it
// started from, so edits from another tab are never overwritten) and shows a preview of what
// the patient will read. Text is only ever set with textContent. Words come from the page
// (data-words-* on the form, and the fields' labels), in the page's language.
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

  function words(name, values) {
    var text = form.getAttribute("data-words-" + name) || "";
    Object.keys(values || {}).forEach(function (key) {
      text = text.split("%(" + key + ")s").join(String(values[key]));
    });
    return text;
  }

  function label(name) {
    var field = form.elements[name];
    var owner = field.closest("label");
    return owner ? owner.firstChild.textContent.trim() : name;
  }

  function body() {
    return {
      summary: value("summary"),
      findings: value("findings"),
      impression: value("impression"),
      answers: value("answers"),
      recommendations: {
        treatment_options: value("treatment_options"),
        urgency: value("urgency") || null,
        further_tests: value("further_tests"),
        guide_options: Array.prototype.map.call(
          form.querySelectorAll('input[name="guide_options"]:checked'),
          function (box) { return box.value; })
      },
      limitations: value("limitations"),
      revision: revision.value ? parseInt(revision.value, 10) : null
    };
  }

  function say(text) { status.textContent = text; }

  function save() {
    if (saving) { again = true; return; }
    saving = true;
    say(words("saving"));
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
        say(words("saved", { time: new Date().toLocaleTimeString(document.documentElement.lang) }));
        if (window.portalSession) { window.portalSession.touched(); }
      } else {
        say(result.data.detail || words("failed"));
      }
    }).catch(function () {
      say(words("offline"));
    }).then(function () {
      saving = false;
      if (again) { again = false; save(); }
    });
  }

  form.addEventListener("input", function () {
    say(words("unsaved"));
    clearTimeout(timer);
    timer = setTimeout(save, 2000);
    renderPreview();
  });

  var preview = document.getElementById("opinion-preview");
  function renderPreview() {
    if (!preview) { return; }
    var urgency = form.elements.urgency;
    var sections = ["summary", "findings", "impression", "answers", "treatment_options", "urgency",
                    "further_tests", "limitations"].map(function (name) {
      var text = name === "urgency" && urgency.value ? urgency.selectedOptions[0].textContent : value(name);
      return [label(name), text];
    });
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
