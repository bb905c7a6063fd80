// The overview's plots, drawn with the vendored uPlot from the page's JSON block.
(function () {
  "use strict";

  var source = document.getElementById("overview-data");
  if (!source || typeof uPlot === "undefined") {
    return;
  }
  var data = JSON.parse(source.dataset.plots);
  var COLORS = { primary: "#2c5fd6", candidate: "#d9822b", fallbacks: "#b3261e", rollout: "#2f8f4e" };
  var HEIGHT = 220;
  var charts = [];

  function widthOf(el) {
    return Math.max(260, el.clientWidth || 260);
  }

  function ms(value) {
    if (value == null) {
      return "";
    }
    return value >= 1000 ? (value / 1000).toPrecision(3) + " s" : value.toPrecision(3) + " ms";
  }

  function percent(value) {
    return value == null ? "" : value.toFixed(1) + " %";
  }

  // Axis ticks: whole percents from 10 up, so "100 %" fits the axis.
  function percentTicks(u, splits) {
    return splits.map(function (v) { return v.toFixed(v >= 10 ? 0 : 1) + " %"; });
  }

  function draw(id, options, columns) {
    var el = document.getElementById(id);
    if (!el) {
      return;
    }
    if (!columns[0].length) {
      el.textContent = "No data in this range.";
      el.classList.add("empty");
      return;
    }
    options.width = widthOf(el);
    options.height = HEIGHT;
    charts.push({ chart: new uPlot(options, columns, el), el: el });
  }

  function line(label, color, extra) {
    var s = { label: label, stroke: color, width: 2, spanGaps: false };
    return Object.assign(s, extra || {});
  }

  // Each arm's share of calls at or below a duration: a log x axis in milliseconds.
  function distribution(id, plot) {
    draw(id, {
      scales: { x: { time: false, distr: 3 }, y: { range: [0, 1] } },
      axes: [{ values: function (u, splits) { return splits.map(ms); } }, {}],
      series: [
        { label: "duration", value: function (u, v) { return ms(v); } },
        line("primary (" + plot.primary_n + ")", COLORS.primary),
        line("candidate (" + plot.candidate_n + ")", COLORS.candidate),
      ],
    }, [plot.x, plot.primary, plot.candidate]);
  }

  function quantiles(plot) {
    var dashed = { dash: [6, 4] };
    var format = { value: function (u, v) { return ms(v); } };
    draw("plot-quantiles", {
      scales: { y: { distr: 3 } },
      axes: [{}, { values: function (u, splits) { return splits.map(ms); }, size: 70 }],
      series: [
        {},
        line("primary p50", COLORS.primary, format),
        line("primary p95", COLORS.primary, Object.assign({}, dashed, format)),
        line("candidate p50", COLORS.candidate, format),
        line("candidate p95", COLORS.candidate, Object.assign({}, dashed, format)),
      ],
    }, [plot.x, plot.primary_p50, plot.primary_p95, plot.candidate_p50, plot.candidate_p95]);
  }

  function rates(plot) {
    var format = { value: function (u, v) { return percent(v); } };
    draw("plot-rates", {
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{}, { values: percentTicks, size: 60 }],
      series: [
        {},
        line("primary errors", COLORS.primary, format),
        line("candidate errors", COLORS.candidate, format),
        line("fallbacks", COLORS.fallbacks, Object.assign({ dash: [6, 4] }, format)),
      ],
    }, [plot.x, plot.primary_errors, plot.candidate_errors, plot.fallbacks]);
  }

  function rollout(plot) {
    draw("plot-rollout", {
      scales: { y: { range: [0, 100] } },
      axes: [{}, { values: percentTicks, size: 60 }],
      series: [
        {},
        line("candidate serves", COLORS.rollout, {
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: true, size: 9, fill: COLORS.rollout },
          value: function (u, v, s, i) { return i == null ? percent(v) : percent(v) + " · " + plot.marks[i]; },
        }),
      ],
    }, [plot.x, plot.percent]);
  }

  function outcomes(plot) {
    var labels = plot.labels;
    var ticks = labels.map(function (_, i) { return i; });
    draw("plot-outcomes", {
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [
        { splits: function () { return ticks; }, values: function (u, splits) { return splits.map(function (v) { return labels[v] || ""; }); } },
        {},
      ],
      series: [
        { label: "outcome", value: function (u, v) { return labels[v] || ""; } },
        { label: "LLM judge", fill: COLORS.primary, stroke: COLORS.primary, paths: uPlot.paths.bars({ size: [0.35], align: -1 }), points: { show: false } },
        { label: "people", fill: COLORS.candidate, stroke: COLORS.candidate, paths: uPlot.paths.bars({ size: [0.35], align: 1 }), points: { show: false } },
      ],
    }, [ticks, plot.judge, plot.people]);
  }

  distribution("plot-latency", data.latency);
  distribution("plot-ttft", data.ttft);
  quantiles(data.quantiles);
  rates(data.rates);
  rollout(data.rollout);
  outcomes(data.outcomes);

  window.addEventListener("resize", function () {
    charts.forEach(function (c) {
      c.chart.setSize({ width: widthOf(c.el), height: HEIGHT });
    });
  });
})();
