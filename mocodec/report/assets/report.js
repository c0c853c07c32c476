/* mocodec report page: draws the curves (plotly.js, inlined before this script) and runs the comparison of decoded images.
   Every string of the data is written with textContent or setAttribute: nothing in it is ever parsed as HTML.
   window.mocodecReport tells a browser test what happened: figures and traces drawn, images loaded or broken, errors. */
(function () {
  "use strict";
  var report = (window.mocodecReport = {
    ready: false,
    figures: 0,
    traces: [],
    plotsDrawnAt: null,
    images: 0,
    imagesLoaded: 0,
    imagesFailed: [],
    errors: []
  });
  window.addEventListener("error", function (event) {
    report.errors.push(String(event.message));
  });
  var data = JSON.parse(document.getElementById("mocodec-report-data").textContent);
  var VIEW = 266; // inner size of a viewport, px
  var MATCHED = Math.log(1.5); // a codec's point within 1.5x of the anchor's rate counts as matched
  var FAR = Math.log(1.25); // beyond 1.25x a caption says how far its rate is from the anchor's
  var ZOOMS = [1, 2, 4, 8];

  function element(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function imageSource(src) {
    return typeof src === "string" && src.indexOf("data:image/") === 0 ? src : ""; // only what the page itself holds
  }

  function fixed(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "n/a";
  }

  function percent(value) {
    if (typeof value !== "number" || !isFinite(value)) return "";
    return (value < 0.1 ? (value * 100).toFixed(1) : Math.round(value * 100)) + "%";
  }

  var FIDELITY = {
    "psnr-rgb": function (v) {
      return "PSNR " + fixed(v, 2) + " dB";
    },
    "ms-ssim": function (v) {
      return "MS-SSIM " + fixed(v, 4);
    }
  };

  // ------------------------------------------------------------------ curves

  function drawFigures() {
    var drawn = data.sections
      .filter(function (section) {
        return section.figure;
      })
      .map(function (section) {
        var target = document.getElementById(section.key + "-figure");
        var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
        return Plotly.newPlot(target, section.figure.data, section.figure.layout, config).then(function () {
          report.figures += 1;
          report.traces.push(target.data.length);
        });
      });
    return Promise.all(drawn);
  }

  // ------------------------------------------------------------------ decoded images

  function preload(comparison) {
    comparison.images.forEach(function (image) {
      var sources = [image.original];
      Object.keys(image.points).forEach(function (curve) {
        image.points[curve].forEach(function (point) {
          sources.push(point.src);
        });
      });
      sources.forEach(function (src, i) {
        var probe = new Image();
        report.images += 1;
        probe.onload = function () {
          report.imagesLoaded += 1;
        };
        probe.onerror = function () {
          report.imagesFailed.push(image.id + " #" + i);
        };
        probe.src = imageSource(src);
      });
    });
  }

  function pointLabel(point) {
    return String(point.point) === String(point.quality) ? "quality " + point.quality : point.point + " (quality " + point.quality + ")";
  }

  function Comparison(root, comparison, colours) {
    var images = comparison.images;
    var state = { image: 0, position: 0, zoom: 1, x: 0, y: 0 };
    var drag = null;
    var picker = element("div", { class: "picker", role: "group", "aria-label": "images" });
    var slider = element("input", { type: "range", min: "0", max: "0", step: "1", value: "0", "aria-label": "rate" });
    var output = element("output", { "aria-live": "polite" });
    var zoomButtons = ZOOMS.map(function (zoom) {
      return element("button", {
        type: "button",
        text: zoom + "×",
        "data-zoom": String(zoom),
        "aria-pressed": String(zoom === 1),
        onclick: function () {
          zoomTo(zoom, VIEW / 2, VIEW / 2);
        }
      });
    });
    var panels = element("div", { class: "panels" });

    function name(index) {
      if (index === null || index === undefined) return "";
      return Object.prototype.hasOwnProperty.call(comparison.names, String(index)) ? comparison.names[String(index)] : "class " + index;
    }

    function anchorOf(image) {
      if (image.points[comparison.anchor]) return comparison.anchor;
      return Object.keys(image.points).sort(function (a, b) {
        return image.points[b].length - image.points[a].length;
      })[0];
    }

    function nearest(points, bpp) {
      var best = points[0];
      points.forEach(function (point) {
        if (Math.abs(Math.log(point.bpp / bpp)) < Math.abs(Math.log(best.bpp / bpp))) best = point;
      });
      return best;
    }

    function curvesOf(image) {
      return comparison.curves.filter(function (curve) {
        return image.points[curve] && image.points[curve].length;
      });
    }

    function shownAt(image, position) {
      var anchor = image.points[anchorOf(image)];
      var target = anchor[Math.min(position, anchor.length - 1)];
      return curvesOf(image).map(function (curve) {
        return { curve: curve, point: nearest(image.points[curve], target.bpp) };
      });
    }

    // How far the codecs' points are from the anchor's rate at a position (the largest log-ratio).
    function mismatch(image, position) {
      var anchor = image.points[anchorOf(image)];
      var target = anchor[Math.min(position, anchor.length - 1)];
      return Math.max.apply(null, shownAt(image, position).map(function (s) {
        return Math.abs(Math.log(s.point.bpp / target.bpp));
      }));
    }

    // Where the slider starts: among the rates every codec reaches (within 1.5x), the lowest at which the judge's
    // predictions differ between codecs, else the middle one; if no rate is matched, the best matched one.
    function startPosition(image) {
      var anchor = image.points[anchorOf(image)];
      var matched = anchor.map(function (_, k) { return k; }).filter(function (k) { return mismatch(image, k) <= MATCHED; });
      if (!matched.length) {
        return anchor.map(function (_, k) { return k; }).sort(function (a, b) { return mismatch(image, a) - mismatch(image, b); })[0];
      }
      for (var i = 0; i < matched.length; i += 1) {
        var predictions = shownAt(image, matched[i]).map(function (s) {
          return s.point.pred;
        });
        if (predictions[0] !== undefined && predictions.some(function (p) { return p !== predictions[0]; })) return matched[i];
      }
      return matched[Math.floor((matched.length - 1) / 2)];
    }

    function cropSize(image) {
      return { width: image.box[3], height: image.box[2] };
    }

    function scale(image) {
      var size = cropSize(image);
      return Math.min(VIEW / size.width, VIEW / size.height) * state.zoom;
    }

    function clampPan(image) {
      var size = cropSize(image);
      var s = scale(image);
      var w = size.width * s;
      var h = size.height * s;
      state.x = w <= VIEW ? (VIEW - w) / 2 : Math.min(0, Math.max(VIEW - w, state.x));
      state.y = h <= VIEW ? (VIEW - h) / 2 : Math.min(0, Math.max(VIEW - h, state.y));
    }

    function applyTransform() {
      var image = images[state.image];
      clampPan(image);
      var s = scale(image);
      panels.querySelectorAll(".viewport img").forEach(function (img) {
        img.style.transform = "translate(" + state.x + "px, " + state.y + "px) scale(" + s + ")";
        img.classList.toggle("pixelated", s >= 2);
      });
      zoomButtons.forEach(function (button) {
        button.setAttribute("aria-pressed", String(Number(button.getAttribute("data-zoom")) === state.zoom));
      });
    }

    function zoomTo(zoom, cx, cy) {
      var image = images[state.image];
      var before = scale(image);
      state.zoom = Math.max(1, Math.min(16, zoom));
      var after = scale(image);
      state.x = cx - (cx - state.x) * (after / before);
      state.y = cy - (cy - state.y) * (after / before);
      applyTransform();
    }

    function viewport(src, colour, alt) {
      var img = element("img", { src: imageSource(src), alt: alt, draggable: "false" });
      var box = element("div", { class: "viewport" }, [img]);
      if (colour) box.style.borderColor = colour;
      box.addEventListener("pointerdown", function (event) {
        drag = { id: event.pointerId, px: event.clientX, py: event.clientY, x: state.x, y: state.y, box: box };
        box.setPointerCapture(event.pointerId);
        box.classList.add("dragging");
      });
      box.addEventListener("pointermove", function (event) {
        if (!drag || drag.id !== event.pointerId) return;
        state.x = drag.x + event.clientX - drag.px;
        state.y = drag.y + event.clientY - drag.py;
        applyTransform();
      });
      function release() {
        if (drag) drag.box.classList.remove("dragging");
        drag = null;
      }
      box.addEventListener("pointerup", release);
      box.addEventListener("pointercancel", release);
      box.addEventListener("wheel", function (event) {
        event.preventDefault();
        var rect = box.getBoundingClientRect();
        zoomTo(state.zoom * (event.deltaY < 0 ? 1.25 : 0.8), event.clientX - rect.left, event.clientY - rect.top);
      }, { passive: false });
      box.addEventListener("dblclick", function () {
        zoomTo(1, VIEW / 2, VIEW / 2);
      });
      return box;
    }

    function judgeLine(point, original) {
      var pred = original ? point.pred_original : point.pred;
      if (pred === undefined || pred === null) return null;
      var confidence = original ? point.confidence : point.pred_confidence;
      var line = element("div", { class: "judge" }, ["top-1: ", element("b", { text: name(pred) }), " " + percent(confidence)]);
      var labelled = point.label !== undefined && point.label !== null;
      var right = labelled ? pred === point.label : original ? null : point.agreement;
      if (right !== null && right !== undefined) {
        var text = labelled ? (right ? " ✓ right" : " ✗ wrong") : right ? " = original" : " ≠ original";
        line.appendChild(element("span", { class: right ? "right" : "wrong", text: text }));
      }
      if (original && labelled) line.appendChild(element("div", { text: "label: " + name(point.label) }));
      return line;
    }

    function panel(src, colour, title, lines, alt) {
      var caption = element("figcaption", {}, [element("div", { class: "name", text: title })].concat(lines));
      return element("figure", { class: "panel", "data-curve": alt }, [viewport(src, colour, alt), caption]);
    }

    function show() {
      var image = images[state.image];
      var anchorName = anchorOf(image);
      var anchor = image.points[anchorName];
      var target = anchor[Math.min(state.position, anchor.length - 1)];
      output.textContent = "at the rate of " + anchorName + " " + pointLabel(target) + ": " + fixed(target.bpp, 3) + " bpp";
      var first = image.points[anchorName][0];
      var size = cropSize(image);
      var children = [
        panel(image.original, null, "original", [
          element("div", { class: "numbers", text: image.size[0] + "×" + image.size[1] + " px, centre " + size.height + "×" + size.width }),
          judgeLine(first, true)
        ], "original")
      ];
      shownAt(image, state.position).forEach(function (shown) {
        var p = shown.point;
        var numbers = [fixed(p.bpp, 3) + " bpp"].concat(
          comparison.fidelity.filter(function (m) { return m in p; }).map(function (m) { return FIDELITY[m](p[m]); })
        );
        var ratio = p.bpp / target.bpp;
        var far = Math.abs(Math.log(ratio)) > FAR
          ? element("div", { class: "far", text: "rate ×" + ratio.toFixed(2) + " the anchor's: no closer point" })
          : null;
        children.push(
          panel(p.src, colours[shown.curve], shown.curve + " · " + pointLabel(p), [
            element("div", { class: "numbers", text: numbers.join(" · ") }),
            far,
            judgeLine(p, false)
          ], shown.curve)
        );
      });
      panels.replaceChildren.apply(panels, children);
      applyTransform();
    }

    function choose(index) {
      state.image = index;
      var image = images[index];
      slider.max = String(image.points[anchorOf(image)].length - 1);
      state.position = startPosition(image);
      slider.value = String(state.position);
      picker.querySelectorAll("button").forEach(function (button, i) {
        button.setAttribute("aria-pressed", String(i === index));
      });
      show();
    }

    images.forEach(function (image, i) {
      picker.appendChild(
        element("button", { type: "button", title: image.id, "aria-pressed": "false", onclick: function () { choose(i); } }, [
          element("img", { src: imageSource(image.original), alt: "" }),
          element("span", { text: image.id })
        ])
      );
    });
    slider.addEventListener("input", function () {
      state.position = Number(slider.value);
      show();
    });
    var reset = element("button", { type: "button", text: "reset view", onclick: function () { state.x = 0; state.y = 0; zoomTo(1, VIEW / 2, VIEW / 2); } });
    root.appendChild(picker);
    root.appendChild(
      element("div", { class: "controls" }, [
        element("label", {}, ["rate ", slider]),
        output,
        element("span", { text: "zoom" })
      ].concat(zoomButtons, [reset]))
    );
    root.appendChild(panels);
    if (images.length) choose(0);
    else root.appendChild(element("p", { class: "note", text: "no image has decoded crops at the points of these results" }));
  }

  function buildComparisons() {
    data.sections.forEach(function (section) {
      if (!section.comparison) return;
      preload(section.comparison);
      Comparison(document.getElementById(section.key + "-comparison"), section.comparison, data.colours);
    });
  }

  function start() {
    try {
      buildComparisons();
    } catch (error) {
      report.errors.push(String(error));
      console.error(error);
    }
    var figures = typeof Plotly === "undefined" ? Promise.reject(new Error("plotly.js is missing")) : drawFigures();
    figures
      .then(function () {
        report.plotsDrawnAt = performance.now();
      })
      .catch(function (error) {
        report.errors.push(String(error));
        console.error(error);
      })
      .then(function () {
        report.ready = true;
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
