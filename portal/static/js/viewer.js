// The DICOM viewer: frames are rendered by the server (decrypted, decoded, windowed); this
// script scrolls through them (wheel, arrow keys, slider), prefetches the neighbours, switches
// window presets and lets the reader drag to adjust brightness (level) and contrast (width).
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  if (!root) { return; }
  var caseId = root.getAttribute("data-case-id");
  var seriesId = root.getAttribute("data-series-id");
  var image = document.getElementById("viewer-image");
  var slider = document.getElementById("viewer-slider");
  var position = document.getElementById("viewer-position");
  var windowLabel = document.getElementById("viewer-window");
  var presetBar = document.getElementById("viewer-presets");
  var problem = document.getElementById("viewer-problem");
  var stage = document.getElementById("viewer-stage");
  var api = "/api/cases/" + caseId;

  var slices = [];        // [{instance, frame}] in scrolling order
  var index = 0;
  var windowing = null;   // {preset} or {center, width}
  var colour = false;
  var cache = new Map();  // url -> Image (prefetched)
  var PREFETCH = 3;

  function frameUrl(slice) {
    var url = api + "/instances/" + slice.instance + "/frames/" + slice.frame;
    if (windowing && windowing.preset) {
      url += "?preset=" + encodeURIComponent(windowing.preset);
    } else if (windowing) {
      url += "?center=" + Math.round(windowing.center) + "&width=" + Math.max(1, Math.round(windowing.width));
    }
    return url;
  }

  function fetchImage(url) {
    if (!cache.has(url)) {
      var img = new Image();
      img.src = url;
      cache.set(url, img);
      if (cache.size > 200) { cache.delete(cache.keys().next().value); }
    }
    return cache.get(url);
  }

  function show() {
    if (!slices.length) { return; }
    var url = frameUrl(slices[index]);
    var shown = fetchImage(url);
    image.src = shown.src;
    slider.value = String(index + 1);
    position.textContent = "Image " + (index + 1) + " of " + slices.length;
    // Neighbours are fetched once the shown image is in, so they never delay it.
    if (shown.complete) { prefetch(); } else { shown.addEventListener("load", prefetch, { once: true }); }
    if (window.portalSession) { window.portalSession.touched(); }
  }

  function prefetch() {
    for (var step = 1; step <= PREFETCH; step++) {
      if (index + step < slices.length) { fetchImage(frameUrl(slices[index + step])); }
      if (index - step >= 0) { fetchImage(frameUrl(slices[index - step])); }
    }
  }

  function go(delta) {
    var next = Math.min(slices.length - 1, Math.max(0, index + delta));
    if (next !== index) { index = next; show(); }
  }

  function describeWindow() {
    if (colour) { windowLabel.textContent = "colour image"; return; }
    if (windowing && windowing.preset) {
      windowLabel.textContent = "window: " + windowing.label;
    } else if (windowing) {
      windowLabel.textContent = "W " + Math.round(windowing.width) + " / L " + Math.round(windowing.center);
    }
  }

  function choosePreset(preset, button) {
    windowing = preset.center === null
      ? { preset: preset.name, label: preset.label }
      : { preset: preset.name, label: preset.label, center: preset.center, width: preset.width };
    presetBar.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
    button.setAttribute("aria-pressed", "true");
    describeWindow();
    show();
  }

  function start(series) {
    if (series.problem) { problem.textContent = series.problem; problem.hidden = false; }
    colour = Boolean(series.colour);
    series.instances.forEach(function (instance) {
      for (var frame = 1; frame <= instance.frames; frame++) {
        slices.push({ instance: instance.id, frame: frame });
      }
    });
    slider.max = String(Math.max(1, slices.length));
    index = Math.floor(slices.length / 2);
    if (series.default_window) {
      windowing = { center: series.default_window.center, width: series.default_window.width };
    }
    series.presets.forEach(function (preset) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = preset.label;
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("data-preset", preset.name);
      button.addEventListener("click", function () { choosePreset(preset, button); });
      presetBar.append(button);
    });
    var edges = series.orientation;
    if (edges) {
      document.getElementById("edge-top").textContent = edges.top;
      document.getElementById("edge-bottom").textContent = edges.bottom;
      document.getElementById("edge-left").textContent = edges.left;
      document.getElementById("edge-right").textContent = edges.right;
    }
    describeWindow();
    show();
    root.focus();
  }

  root.addEventListener("wheel", function (event) {
    event.preventDefault();
    go(event.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  root.addEventListener("keydown", function (event) {
    var moves = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
    if (event.key in moves) { event.preventDefault(); go(moves[event.key]); }
    if (event.key === "Home") { event.preventDefault(); go(-slices.length); }
    if (event.key === "End") { event.preventDefault(); go(slices.length); }
  });
  slider.addEventListener("input", function () { index = parseInt(slider.value, 10) - 1; show(); });

  // Drag: horizontal changes the width (contrast), vertical the level (brightness).
  var drag = null;
  var dragTimer = null;
  stage.addEventListener("pointerdown", function (event) {
    if (colour || !windowing) { return; }
    var base = windowing.center === undefined ? { center: 40, width: 400 } : windowing;
    drag = { x: event.clientX, y: event.clientY, center: base.center, width: base.width };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", function (event) {
    if (!drag) { return; }
    var scale = Math.max(1, drag.width / 200);
    windowing = {
      center: drag.center + (event.clientY - drag.y) * scale,
      width: Math.max(1, drag.width + (event.clientX - drag.x) * scale * 2)
    };
    presetBar.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
    describeWindow();
    clearTimeout(dragTimer);
    dragTimer = setTimeout(show, 60);
  });
  stage.addEventListener("pointerup", function () { drag = null; show(); });

  fetch(api + "/series/" + seriesId, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(start)
    .catch(function () {
      problem.textContent = "The images of this series could not be loaded. Reload the page to try again.";
      problem.hidden = false;
    });
})();
