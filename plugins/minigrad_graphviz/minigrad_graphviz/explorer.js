// MiniGrad explorer: steps through a backward pass drawn as inline SVG.
// The steps come from minigrad_explain.explain as JSON in #minigrad-data; the SVG's
// elements carry ids from minigrad_graphviz.drawing: v{i} (value i in reading
// order), v{i}_op (the op that made it), e{i}_{k} (edge from its k-th input).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("minigrad-data").textContent);
  var nodes = data.nodes;
  var steps = data.steps;
  var svg = document.querySelector("#graph svg");

  // Graphviz puts a <title> (the DOT node id) in each element: the browser would show
  // it as a second tooltip on top of ours.
  Array.prototype.slice.call(svg.querySelectorAll("title")).forEach(function (t) { t.remove(); });

  var records = nodes.map(function (n, i) { return document.getElementById("v" + i); });
  var ops = nodes.map(function (n, i) { return document.getElementById("v" + i + "_op"); });
  var gradTexts = records.map(function (g) {
    if (!g) { return null; }
    var texts = Array.prototype.slice.call(g.querySelectorAll("text"));
    return texts.filter(function (t) { return t.textContent.trim().indexOf("grad") === 0; })[0] || null;
  });

  var position = 0; // how many steps have run
  var grads = [];

  // The same format as the records drawn by Python (drawing.format_value).
  function fmt(x) {
    if (typeof x === "string") { return x; } // "inf", "nan": JSON has no such numbers
    if (x === 0) { return "0.0000"; }
    var a = Math.abs(x);
    if (a >= 1e5 || a < 1e-4) { return x.toPrecision(4); }
    return x.toFixed(4);
  }

  function gradsAfter(k) {
    var result = nodes.map(function () { return null; });
    for (var s = 0; s < k; s++) { result[steps[s].target] = steps[s].grad_after; }
    return result;
  }

  function byId(id) { return document.getElementById(id); }

  function show(k) {
    position = Math.max(0, Math.min(steps.length, k));
    grads = gradsAfter(position);
    var step = position > 0 ? steps[position - 1] : null;
    var passing = step ? step.node : -1;
    var receiving = step && step.kind === "contribution" ? step.target : -1;
    records.forEach(function (g, i) {
      if (!g) { return; }
      if (gradTexts[i]) { gradTexts[i].textContent = grads[i] === null ? "grad ?" : "grad " + fmt(grads[i]); }
      g.classList.toggle("pending", grads[i] === null);
      g.classList.toggle("current", i === passing);
      g.classList.toggle("receiving", i === receiving);
      g.setAttribute("data-grad", grads[i] === null ? "" : String(grads[i]));
    });
    ops.forEach(function (g, i) {
      if (g) { g.classList.toggle("current", receiving >= 0 && i === passing); }
    });
    Array.prototype.slice.call(document.querySelectorAll("#graph g.edge.active")).forEach(function (e) {
      e.classList.remove("active");
    });
    if (receiving >= 0) {
      var edge = byId("e" + step.node + "_" + step.input_index);
      if (edge) { edge.classList.add("active"); }
    }
    // steps are numbered from 0 (the seed), as in the text explanation
    byId("counter").textContent = step ? "step " + step.index + " of " + (steps.length - 1) : "before step 0";
    byId("first").disabled = byId("prev").disabled = position === 0;
    byId("next").disabled = byId("last").disabled = position === steps.length;
    if (!step) {
      byId("step-title").textContent = "Before the backward pass";
      byId("step-text").textContent =
        "Every gradient is still unknown (grad ?). Press next \u25B6 or the \u2192 key: " +
        "step 0 sets the output's gradient to 1, then each step applies the chain rule once.";
    } else if (step.kind === "seed") {
      byId("step-title").textContent = "Step 0: the seed";
      byId("step-text").textContent = step.text;
    } else {
      byId("step-title").textContent = "Step " + step.index + ": " + step.node_name + " \u2192 " + step.target_name;
      byId("step-text").textContent = step.text;
    }
    document.body.setAttribute("data-step", String(position));
  }

  // -- tooltip --------------------------------------------------------------------------
  var tooltip = byId("tooltip");

  function line(label, value) {
    var row = document.createElement("div");
    var key = document.createElement("b");
    key.textContent = label + " ";
    row.appendChild(key);
    row.appendChild(document.createTextNode(value));
    return row;
  }

  function describeValue(i) {
    var n = nodes[i];
    var parts = [line("value", n.name)];
    if (n.op) {
      parts.push(line("op", n.symbol + (n.symbol !== n.op ? "  (" + n.op + ")" : "")));
      parts.push(line("formula", n.definition));
    } else {
      parts.push(line("leaf", "an input or parameter"));
    }
    parts.push(line("data", fmt(n.data)));
    parts.push(line("grad", grads[i] === null ? "not computed yet" : fmt(grads[i])));
    return parts;
  }

  function describeOp(i) {
    var n = nodes[i];
    // Formulas in the graph's own names: the op's generic input names ("b" for the second
    // input of *) would clash with the learner's own (a bias called b).
    var parts = [line("op", n.symbol + (n.symbol !== n.op ? "  (" + n.op + ")" : "")),
                 line("computes", n.definition)];
    n.derivative_named.forEach(function (f, k) {
      var input = nodes[n.inputs[k]];
      if (input && f) { parts.push(line("d " + n.name + " / d " + input.name + " =", f)); }
    });
    parts.push(line("data", fmt(n.data)));
    parts.push(line("grad", grads[i] === null ? "not computed yet" : fmt(grads[i])));
    return parts;
  }

  function attach(element, describe) {
    if (!element) { return; }
    element.addEventListener("mouseenter", function (event) {
      tooltip.textContent = "";
      describe().forEach(function (part) { tooltip.appendChild(part); });
      tooltip.hidden = false;
      place(event);
    });
    element.addEventListener("mousemove", place);
    element.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  }

  function place(event) {
    var x = event.clientX + 14;
    var y = event.clientY + 14;
    var width = tooltip.offsetWidth;
    var height = tooltip.offsetHeight;
    if (x + width > window.innerWidth - 4) { x = Math.max(4, event.clientX - width - 14); }
    if (y + height > window.innerHeight - 4) { y = Math.max(4, event.clientY - height - 14); }
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }

  records.forEach(function (g, i) { attach(g, function () { return describeValue(i); }); });
  ops.forEach(function (g, i) { attach(g, function () { return describeOp(i); }); });

  // -- controls -------------------------------------------------------------------------
  byId("first").addEventListener("click", function () { show(0); });
  byId("prev").addEventListener("click", function () { show(position - 1); });
  byId("next").addEventListener("click", function () { show(position + 1); });
  byId("last").addEventListener("click", function () { show(steps.length); });
  document.addEventListener("keydown", function (event) {
    var moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (event.key in moves) { show(position + moves[event.key]); }
    else if (event.key === "Home") { show(0); }
    else if (event.key === "End") { show(steps.length); }
    else { return; }
    event.preventDefault();
  });

  byId("why").textContent = data.why;
  byId("all-text").textContent = data.text;
  show(0);
  window.minigradExplorer = { show: show, steps: steps, nodes: nodes, position: function () { return position; } };
}());
