// The DICOM viewer: frames are rendered by the server (decrypted, decoded, windowed); this
// script scrolls through them (wheel, arrow keys, slider), prefetches the neighbours, switches
// window presets and lets the reader drag to adjust brightness (level) and contrast (width).
// The frame fills its stage (CSS), and can be zoomed (Ctrl+wheel, + and -, buttons) and panned
// (the Pan tool); 0 or Fit puts it back. On a touch screen one finger swiped up or down moves
// through the images and two fingers pinch to zoom and move the image (a finger never changes
// the windowing: on a phone that is what the presets are for).
// Words come from the page (data-words-* on the viewer, in the page's language).
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
  var zoomLabel = document.getElementById("viewer-zoom");
  var windowTool = document.getElementById("viewer-tool-window");
  var panTool = document.getElementById("viewer-tool-pan");
  // A shared link's viewer reads through the link's own address (data-api-root).
  var api = root.getAttribute("data-api-root") || "/api/cases/" + caseId;

  function words(name, values) {
    var text = root.getAttribute("data-words-" + name) || "";
    Object.keys(values || {}).forEach(function (key) {
      text = text.split("%(" + key + ")s").join(String(values[key]));
    });
    return text;
  }

  var slices = [];        // [{instance, frame}] in scrolling order
  var index = 0;
  var windowing = null;   // {preset} or {center, width}
  var colour = false;
  var cache = new Map();  // url -> Image (prefetched)
  var PREFETCH = 3;
  var view = { zoom: 1, x: 0, y: 0 };  // zoom over "fit", and the pan offset in CSS pixels
  var ZOOM_MIN = 1, ZOOM_MAX = 16;

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
    position.textContent = words("image", { position: index + 1, total: slices.length });
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

  function place() {
    image.style.transform = "translate(" + view.x + "px, " + view.y + "px) scale(" + view.zoom + ")";
    zoomLabel.textContent = Math.round(view.zoom * 100) + "%";
  }

  function zoomTo(wanted) {
    var zoom = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, wanted));
    view.x = view.x * zoom / view.zoom;
    view.y = view.y * zoom / view.zoom;
    view.zoom = zoom;
    if (zoom === 1) { view.x = 0; view.y = 0; }
    place();
  }

  function zoomBy(factor) { zoomTo(view.zoom * factor); }

  function fit() { view = { zoom: 1, x: 0, y: 0 }; place(); }

  function useTool(name) {
    stage.setAttribute("data-tool", name);
    windowTool.setAttribute("aria-pressed", String(name === "window"));
    panTool.setAttribute("aria-pressed", String(name === "pan"));
  }

  function go(delta) {
    var next = Math.min(slices.length - 1, Math.max(0, index + delta));
    if (next !== index) { index = next; show(); }
  }

  function describeWindow() {
    if (colour) { windowLabel.textContent = words("colour"); return; }
    if (windowing && windowing.preset) {
      windowLabel.textContent = words("window", { name: windowing.label });
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
    if (event.ctrlKey || event.metaKey) { zoomBy(event.deltaY > 0 ? 1 / 1.2 : 1.2); return; }
    go(event.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  root.addEventListener("keydown", function (event) {
    var moves = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
    if (event.key in moves) { event.preventDefault(); go(moves[event.key]); }
    if (event.key === "Home") { event.preventDefault(); go(-slices.length); }
    if (event.key === "End") { event.preventDefault(); go(slices.length); }
    if (event.key === "+" || event.key === "=") { event.preventDefault(); zoomBy(1.25); }
    if (event.key === "-") { event.preventDefault(); zoomBy(1 / 1.25); }
    if (event.key === "0") { event.preventDefault(); fit(); }
  });
  slider.addEventListener("input", function () { index = parseInt(slider.value, 10) - 1; show(); });

  // Touch: one finger swipes through the images, two pinch to zoom and move the image.
  var fingers = new Map();  // pointerId -> {x, y}
  var swipe = null;         // {y, index} where the finger went down
  var pinch = null;         // {distance, zoom, x, y, viewX, viewY} when the second finger went down
  var SWIPE_STEP = 12;      // CSS pixels of finger travel per image

  function spread() {
    var points = Array.from(fingers.values());
    var dx = points[0].x - points[1].x, dy = points[0].y - points[1].y;
    return { distance: Math.max(1, Math.hypot(dx, dy)),
             x: (points[0].x + points[1].x) / 2, y: (points[0].y + points[1].y) / 2 };
  }

  function touchDown(event) {
    fingers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    try { stage.setPointerCapture(event.pointerId); } catch (ignored) { /* not an active pointer */ }
    if (fingers.size === 1) {
      swipe = { y: event.clientY, index: index };
    } else if (fingers.size === 2) {
      var now = spread();
      swipe = null;
      pinch = { distance: now.distance, zoom: view.zoom, x: now.x, y: now.y, viewX: view.x, viewY: view.y };
    }
  }

  function touchMove(event) {
    if (!fingers.has(event.pointerId)) { return; }
    fingers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pinch && fingers.size >= 2) {
      var now = spread();
      zoomTo(pinch.zoom * now.distance / pinch.distance);
      if (view.zoom > 1) {
        view.x = pinch.viewX + now.x - pinch.x;
        view.y = pinch.viewY + now.y - pinch.y;
        place();
      }
    } else if (swipe) {
      var target = swipe.index + Math.round((swipe.y - event.clientY) / SWIPE_STEP);
      go(target - index);
    }
  }

  function touchUp(event) {
    fingers.delete(event.pointerId);
    if (fingers.size < 2) { pinch = null; }
    if (fingers.size === 0) { swipe = null; }
  }

  // Mouse and pen drag: horizontal changes the width (contrast), vertical the level (brightness).
  var drag = null;
  var dragTimer = null;
  var panning = null;
  stage.addEventListener("pointerdown", function (event) {
    if (event.pointerType === "touch") { touchDown(event); return; }
    if (stage.getAttribute("data-tool") === "pan") {
      panning = { x: event.clientX - view.x, y: event.clientY - view.y };
      stage.setPointerCapture(event.pointerId);
      return;
    }
    if (colour || !windowing) { return; }
    var base = windowing.center === undefined ? { center: 40, width: 400 } : windowing;
    drag = { x: event.clientX, y: event.clientY, center: base.center, width: base.width };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", function (event) {
    if (event.pointerType === "touch") { touchMove(event); return; }
    if (panning) {
      view.x = event.clientX - panning.x;
      view.y = event.clientY - panning.y;
      place();
      return;
    }
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
  stage.addEventListener("pointercancel", function (event) {
    if (event.pointerType === "touch") { touchUp(event); }
  });
  stage.addEventListener("pointerup", function (event) {
    if (event.pointerType === "touch") { touchUp(event); return; }
    if (panning) { panning = null; return; }
    drag = null;
    show();
  });
  windowTool.addEventListener("click", function () { useTool("window"); });
  panTool.addEventListener("click", function () { useTool("pan"); });
  document.getElementById("viewer-zoom-in").addEventListener("click", function () { zoomBy(1.25); });
  document.getElementById("viewer-zoom-out").addEventListener("click", function () { zoomBy(1 / 1.25); });
  document.getElementById("viewer-fit").addEventListener("click", fit);
  useTool("window");
  place();

  fetch(api + "/series/" + seriesId, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(start)
    .catch(function () {
      problem.textContent = words("failed");
      problem.hidden = false;
    });
})();
