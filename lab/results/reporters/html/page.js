/*
 * Draws the charts of the migralab HTML report from the data embedded in the page (the
 * JSON block with id "data", see view.ts), with Chart.js inlined before it. Inlined by
 * page.ts when a report is rendered. Plain browser JavaScript, kept as written:
 * transpiled TypeScript could carry bundler helpers the page does not have. When done,
 * it sets data-charts="ready" on the body.
 */
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('data').textContent);
  var css = getComputedStyle(document.documentElement);
  var palette = { block: css.getPropertyValue('--block').trim() || '#d9480f', shared: css.getPropertyValue('--shared').trim() || '#1c7ed6' };
  var spare = ['#2b8a3e', '#7048e8', '#e8590c', '#0c8599'];
  function color(strategy, k) { return palette[strategy] || spare[k % spare.length]; }
  function fmt(v, unit) { return v === null || v === undefined ? '–' : unit === 'ms' ? v.toFixed(1) + ' ms' : String(Math.round(v * 10) / 10); }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }

  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#59636e';

  /** Shaded largest gap, and vertical lines at the request and the phase marks. */
  var marksPlugin = {
    id: 'migralabMarks',
    beforeDatasetsDraw: function (chart, _args, opts) {
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      if (!opts.gap) return;
      var a = Math.max(area.left, x.getPixelForValue(opts.gap.startMs));
      var b = Math.min(area.right, x.getPixelForValue(opts.gap.endMs));
      if (b <= a) return;
      ctx.save();
      ctx.fillStyle = 'rgba(224, 49, 49, 0.18)';
      ctx.fillRect(a, area.top, b - a, area.bottom - area.top);
      ctx.strokeStyle = 'rgba(224, 49, 49, 0.6)';
      ctx.lineWidth = 1;
      ctx.strokeRect(a + 0.5, area.top + 0.5, b - a - 1, area.bottom - area.top - 1);
      ctx.restore();
    },
    afterDraw: function (chart, _args, opts) {
      if (!opts.gap) return;
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      var a = Math.max(area.left, x.getPixelForValue(opts.gap.startMs));
      var b = Math.min(area.right, x.getPixelForValue(opts.gap.endMs));
      var text = 'gap ' + opts.gap.ms.toFixed(1) + ' ms';
      ctx.save();
      ctx.font = '600 11px ' + Chart.defaults.font.family;
      var w = ctx.measureText(text).width + 8;
      var cx = Math.min(Math.max(b + 4 + w / 2, area.left + w / 2), area.right - w / 2);
      var cy = area.top + (area.bottom - area.top) * 0.55;
      ctx.fillStyle = 'rgba(255, 255, 255, 0.85)';
      ctx.fillRect(cx - w / 2, cy - 9, w, 16);
      ctx.fillStyle = '#c92a2a';
      ctx.textAlign = 'center';
      ctx.fillText(text, cx, cy + 3);
      ctx.restore();
    },
    afterDatasetsDraw: function (chart, _args, opts) {
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      var k = -1;
      (opts.lines || []).forEach(function (l) {
        if (l.at === null || l.at === undefined) return;
        var px = x.getPixelForValue(l.at);
        if (px < area.left || px > area.right) return;
        k++;
        ctx.save();
        ctx.strokeStyle = l.color;
        ctx.lineWidth = 1.5;
        ctx.setLineDash(l.dash ? [5, 4] : []);
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillStyle = l.color;
        ctx.font = '11px ' + Chart.defaults.font.family;
        ctx.textAlign = px > area.right - 80 ? 'right' : 'left';
        ctx.fillText(l.label, px + (ctx.textAlign === 'right' ? -4 : 4), area.top + 12 + 13 * k);
        ctx.restore();
      });
    },
  };

  function distributionChart(canvas, d) {
    var datasets = [];
    var nCells = d.cells.length;
    d.cells.forEach(function (s, k) {
      var reps = s.points.map(function (p) { return p.repetition; });
      var lo = Math.min.apply(null, reps), hi = Math.max.apply(null, reps);
      var c = color(s.strategy, k);
      datasets.push({
        label: s.label,
        migralab: 'points',
        data: s.points.map(function (p) {
          var spread = hi > lo ? (p.repetition - lo) / (hi - lo) - 0.5 : 0;
          return { x: k + spread * 0.5, y: p.value, repetition: p.repetition, iteration: p.index };
        }),
        backgroundColor: alpha(c, 0.75),
        borderColor: c,
        pointRadius: 4.5,
        pointHoverRadius: 6,
      });
      if (s.median !== null) {
        datasets.push({
          label: s.label + ' median',
          migralab: 'median',
          type: 'line',
          data: [{ x: k - 0.36, y: s.median }, { x: k + 0.36, y: s.median }],
          borderColor: c,
          borderWidth: 3,
          pointRadius: 0,
          pointHoverRadius: 0,
        });
      }
    });
    return new Chart(canvas, {
      type: 'scatter',
      data: { datasets: datasets },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.dataset.migralab === 'points'; },
            callbacks: {
              label: function (item) {
                var p = item.raw;
                return item.dataset.label + ' #' + p.repetition + ' (iteration ' + (p.iteration + 1) + '): ' + fmt(p.y, d.unit);
              },
            },
          },
        },
        scales: {
          x: {
            type: 'linear',
            min: -0.5,
            max: nCells - 0.5,
            grid: { display: false },
            afterBuildTicks: function (axis) { axis.ticks = d.cells.map(function (_s, k) { return { value: k }; }); },
            // a cell label on lines: the strategy, then the value of each axis (the caption names the axes)
            ticks: {
              callback: function (v) {
                var s = d.cells[v];
                return s ? s.label.split(', ').map(function (part) { var k = part.indexOf('='); return k < 0 ? part : part.slice(k + 1); }) : '';
              },
              font: { weight: '600' },
              maxRotation: 0,
              autoSkip: false,
            },
          },
          y: { beginAtZero: true, title: { display: true, text: d.unit === 'ms' ? d.label + ' (ms)' : d.label } },
        },
      },
    });
  }

  function timelineChart(canvas, run, t) {
    var it = run.results.iterations.filter(function (i) { return i.index === t.index; })[0];
    var tl = it.timeline;
    var c = color(it.strategy, 0);
    var points = tl.ping
      .filter(function (p) { return p[1] !== null; })
      .map(function (p) { return { x: p[0], y: p[1], seq: p[2] }; })
      .sort(function (a, b) { return a.x - b.x; });
    var range = t.range || run.timelineRange || {};
    var MiB = 1024 * 1024;
    var samples = tl.samples || [];
    function series(field) {
      var pts = samples.map(function (s) { return { x: s.t, y: s[field] === null ? null : s[field] / MiB, phase: s.phase }; });
      return pts.some(function (p) { return p.y !== null; }) ? pts : null;
    }
    var remaining = [
      { label: 'RAM remaining', field: 'ramRemaining', color: '#0c8599' },
      { label: 'disk remaining', field: 'diskRemaining', color: '#7048e8' },
    ].map(function (r) { return { r: r, data: series(r.field) }; }).filter(function (x) { return x.data; });
    // No line across a silence (more than 2.5 times the usual spacing of replies): a line there would draw replies that never came.
    var steps = points.slice(1).map(function (p, k) { return p.x - points[k].x; }).sort(function (a, b) { return a - b; });
    var usual = steps.length ? steps[steps.length >> 1] : 0;
    var silent = function (seg) { return usual > 0 && seg.p1.parsed.x - seg.p0.parsed.x > 2.5 * usual; };
    return new Chart(canvas, {
      type: 'scatter',
      data: {
        datasets: [{
          label: 'RTT',
          migralab: 'rtt',
          data: points,
          showLine: true,
          spanGaps: false,
          borderColor: alpha(c, 0.55),
          borderWidth: 1,
          backgroundColor: c,
          pointRadius: 1.8,
          pointHoverRadius: 4,
          segment: { borderColor: function (seg) { return silent(seg) ? 'rgba(0, 0, 0, 0)' : undefined; } },
        }].concat(remaining.map(function (x) {
          return {
            label: x.r.label,
            migralab: x.r.field,
            yAxisID: 'y2',
            data: x.data,
            showLine: true,
            spanGaps: false,
            borderColor: x.r.color,
            backgroundColor: x.r.color,
            borderWidth: 2,
            pointRadius: 0,
            pointHoverRadius: 3,
          };
        })),
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                if (item.dataset.migralab !== 'rtt') return item.dataset.label + ' at ' + item.raw.x.toFixed(0) + ' ms (' + item.raw.phase + '): ' + item.raw.y.toFixed(1) + ' MiB';
                return 'icmp_seq ' + item.raw.seq + ' at ' + item.raw.x.toFixed(1) + ' ms: rtt ' + item.raw.y + ' ms';
              },
            },
          },
          migralabMarks: {
            gap: t.gap,
            lines: [
              { at: 0, label: 'request', color: '#343a40', dash: false },
              { at: tl.marks.mirrorReady, label: 'mirror ready', color: '#7048e8', dash: true },
              { at: tl.marks.ramStart, label: 'RAM start', color: '#0c8599', dash: true },
              { at: tl.marks.postcopyStart, label: 'post-copy', color: '#e67700', dash: true },
              { at: tl.marks.completed, label: 'completed', color: '#2b8a3e', dash: true },
              { at: tl.marks.destRunning, label: 'destination running', color: '#c2255c', dash: true },
            ],
          },
        },
        scales: {
          x: { type: 'linear', min: range.min, max: range.max, title: { display: true, text: 'ms after the migration request' } },
          y: { beginAtZero: true, title: { display: true, text: 'RTT (ms)' } },
          y2: {
            display: remaining.length > 0,
            position: 'right',
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            title: { display: true, text: 'remaining (MiB)' },
          },
        },
      },
      plugins: [marksPlugin],
    });
  }

  data.runs.forEach(function (run) {
    run.distributions.forEach(function (d) {
      var canvas = document.getElementById(run.id + '-dist-' + d.metric);
      if (canvas) distributionChart(canvas, d);
    });
    run.timelines.forEach(function (t) {
      var canvas = document.getElementById(run.id + '-timeline-' + t.index);
      if (canvas) timelineChart(canvas, run, t);
    });
  });
  document.body.setAttribute('data-charts', 'ready');
})();
