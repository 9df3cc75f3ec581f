// receiptd admin dashboard: reads the admin API with the token kept in
// sessionStorage (this tab only) and draws numbers, a chart and tables.
// Plain DOM and SVG, no library; every ledger string goes in as text.
'use strict';

(() => {
  const TOKEN_KEY = 'receiptd-admin-token';
  const PAGE = 50;
  const REFRESH_MS = 30000;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  let token = null;
  let cursor = null;
  let query = {};
  let timer = null;
  let series = null;

  // ---- sign-in ------------------------------------------------------------

  function takeTokenFromHash() {
    const m = /^#token=([A-Za-z0-9._~-]+)$/.exec(location.hash);
    if (!m) return;
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    // The token leaves the address bar and the history entry at once.
    history.replaceState(null, '', location.pathname + location.search);
  }

  function showSignin(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    $('app').hidden = true;
    $('refresh').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('token').focus();
  }

  function showApp() {
    $('signin').hidden = true;
    $('app').hidden = false;
    $('refresh').hidden = false;
    $('signout').hidden = false;
  }

  class AuthError extends Error {}

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) if (v !== '' && v != null) url.searchParams.set(k, v);
    const res = await fetch(url, { headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' }, cache: 'no-store' });
    if (res.status === 401) throw new AuthError('The token was not accepted.');
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error((body && body.message) || `${path}: HTTP ${res.status}`);
    return body;
  }

  // ---- formatting -----------------------------------------------------------

  const intFmt = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => intFmt.format(n);
  const fmtRate = (r) => (r == null ? '–' : (r * 100).toFixed(1) + '%');
  const fmtTime = (ms) => (ms == null ? '–' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  function fmtDuration(ms) {
    if (ms == null) return '–';
    const a = Math.abs(ms);
    if (a < 1000) return ms + ' ms';
    if (a < 60000) return (ms / 1000).toFixed(1) + ' s';
    if (a < 3600000) return (ms / 60000).toFixed(1) + ' min';
    if (a < 86400000) return (ms / 3600000).toFixed(1) + ' h';
    return (ms / 86400000).toFixed(1) + ' d';
  }
  const short = (s, n) => (s && s.length > n ? s.slice(0, n) + '…' : s || '–');

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function setNumber(id, value, text) {
    const e = $(id);
    e.dataset.value = value == null ? '' : String(value);
    e.textContent = text;
  }

  // The kinds of delivery, as an operator reads them (docs/api.md).
  const KINDS = [
    ['page', 'Page views', 'HTML pages opened in a browser; the agent confirms them'],
    ['download', 'Downloads', 'files fetched and hashed by the agent, or downloaded by the browser'],
    ['view', 'Documents viewed', 'PDFs and other files opened by a link; no agent can confirm them'],
    ['device', 'Devices and scripts', 'requests without fetch metadata: devices, the receipt command'],
    ['tracked', 'Tracked by rule', 'other requests an operator tracked (--track, --track-subresources)'],
  ];

  // ---- sections ---------------------------------------------------------------

  function renderSummary(s) {
    setNumber('n-deliveries', s.deliveries, fmtInt(s.deliveries));
    setNumber('n-confirmed', s.confirmed, fmtInt(s.confirmed));
    setNumber('n-corrupted', s.corrupted, fmtInt(s.corrupted));
    setNumber('n-pending', s.pending, fmtInt(s.pending));
    setNumber('n-bound', s.bound, fmtInt(s.bound));
    setNumber('n-rate', s.confirmation_rate, fmtRate(s.confirmation_rate));
    const kinds = s.kinds || {};
    const rows = KINDS.filter(([k]) => kinds[k] && kinds[k].deliveries > 0).map(([k, label, what]) => {
      const n = kinds[k];
      return el('tr', { 'data-kind': k },
        el('th', { scope: 'row' }, label),
        el('td', { class: 'num', 'data-field': 'deliveries' }, fmtInt(n.deliveries)),
        el('td', { class: 'num', 'data-field': 'confirmed' }, fmtInt(n.confirmed)),
        el('td', { class: 'num opt-phone', 'data-field': 'corrupted' }, fmtInt(n.corrupted)),
        el('td', { class: 'num opt', 'data-field': 'pending' }, fmtInt(n.pending)),
        el('td', { class: 'num rate', 'data-field': 'rate', 'data-value': String(n.confirmation_rate) },
          fmtRate(n.confirmation_rate)),
        el('td', { class: 'muted opt' }, what));
    });
    $('kinds').tBodies[0].replaceChildren(...rows);
    $('kinds-empty').hidden = rows.length > 0;
  }

  function renderContents(list) {
    const body = $('contents').tBodies[0];
    body.replaceChildren(...list.items.map((c) => el('tr', { 'data-content': c.content, 'data-sha256': c.sha256 },
      el('td', { class: 'path mono' }, c.content),
      el('td', { class: 'mono opt', title: c.sha256 }, short(c.sha256, 10)),
      el('td', { class: 'num', 'data-field': 'deliveries' }, fmtInt(c.deliveries)),
      el('td', { class: 'num', 'data-field': 'confirmed' }, fmtInt(c.confirmed)),
      el('td', { class: 'num opt-phone', 'data-field': 'corrupted' }, fmtInt(c.corrupted)),
      el('td', { class: 'num opt', 'data-field': 'pending' }, fmtInt(c.pending)),
      el('td', { class: 'num', 'data-field': 'rate', 'data-value': String(c.confirmation_rate) }, fmtRate(c.confirmation_rate)),
      el('td', { class: 'num opt', 'data-field': 'median', 'data-value': String(c.median_ms) }, fmtDuration(c.median_ms)),
      el('td', { class: 'num opt', 'data-field': 'p95', 'data-value': String(c.p95_ms) }, fmtDuration(c.p95_ms)))));
    $('contents-empty').hidden = list.items.length > 0;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // Bars for deliveries, lines for confirmations; scaled to the box's size.
  function renderChart() {
    const box = $('chart');
    if (!series) return;
    const w = Math.max(box.clientWidth, 280);
    const h = Math.max(box.clientHeight, 160);
    const pad = { l: 44, r: 10, t: 10, b: 24 };
    const b = series.buckets;
    const max = Math.max(1, ...b.map((x) => Math.max(x.deliveries, x.confirmed + x.corrupted)));
    const iw = w - pad.l - pad.r;
    const ih = h - pad.t - pad.b;
    const step = iw / Math.max(b.length, 1);
    const y = (v) => pad.t + ih - (v / max) * ih;
    const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h });
    for (const f of [0, 0.5, 1]) {
      const v = Math.round(max * f);
      root.append(svg('line', { class: 'grid', x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }));
      const t = svg('text', { class: 'axis', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
      t.textContent = fmtInt(v);
      root.append(t);
    }
    b.forEach((x, i) => {
      const bh = (x.deliveries / max) * ih;
      const rect = svg('rect', { class: 'bar', x: pad.l + i * step + step * 0.1, y: pad.t + ih - bh, width: Math.max(step * 0.8, 1), height: bh });
      const title = svg('title');
      title.textContent = `${fmtTime(x.t)}: ${x.deliveries} deliveries, ${x.confirmed} confirmed, ${x.corrupted} corrupted`;
      rect.append(title);
      root.append(rect);
    });
    const line = (key, cls) => {
      const pts = b.map((x, i) => `${(pad.l + (i + 0.5) * step).toFixed(1)},${y(x[key]).toFixed(1)}`);
      // One bucket: a level across its bar, since a single point draws nothing.
      if (b.length === 1) {
        const at = y(b[0][key]).toFixed(1);
        pts.splice(0, 1, `${(pad.l + step * 0.1).toFixed(1)},${at}`, `${(pad.l + step * 0.9).toFixed(1)},${at}`);
      }
      if (pts.length) root.append(svg('polyline', { class: cls, points: pts.join(' ') }));
    };
    line('confirmed', 'line-confirmed');
    line('corrupted', 'line-corrupted');
    if (b.length) {
      const first = svg('text', { class: 'axis', x: pad.l, y: h - 6 });
      first.textContent = fmtTime(b[0].t);
      const last = svg('text', { class: 'axis', x: w - pad.r, y: h - 6, 'text-anchor': 'end' });
      last.textContent = fmtTime(series.until_ms);
      root.append(first, last);
    }
    box.replaceChildren(root);
    $('chart-range').textContent = `(${fmtDuration(series.bucket_ms)} per bar)`;
  }

  function deliveryRow(d) {
    const tr = el('tr', { tabIndex: 0, 'data-delivery': d.delivery, 'data-status': d.status },
      el('td', { class: 'mono' }, fmtTime(d.issued_at_ms)),
      el('td', {}, el('span', { class: 'status status-' + d.status }, d.status)),
      el('td', { class: 'opt-phone' }, d.kind || '–'),
      el('td', { class: 'path mono' }, d.content),
      el('td', { class: 'mono opt', title: d.client || '' }, short(d.client, 12)),
      el('td', { class: 'mono opt' }, short(d.delivery, 13)));
    const open = () => showDetail(d.delivery).catch(fail);
    tr.addEventListener('click', open);
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
    return tr;
  }

  async function loadDeliveries(append) {
    const page = await api('/api/deliveries', { ...query, limit: PAGE, cursor: append ? cursor : '' });
    const body = $('deliveries').tBodies[0];
    const rows = page.items.map(deliveryRow);
    if (append) body.append(...rows);
    else body.replaceChildren(...rows);
    cursor = page.next_cursor;
    $('more').hidden = !cursor;
    $('deliveries-empty').hidden = body.rows.length > 0;
  }

  function decodePayload(jws) {
    const part = jws.split('.')[1] || '';
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (ch) => ch.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  async function showDetail(id) {
    const d = await api('/api/deliveries/' + encodeURIComponent(id));
    const fields = [
      ['Delivery', d.delivery], ['Status', d.status], ['Kind', d.kind], ['Content', d.content],
      ['Version SHA-256', d.sha256], ['Version size', fmtInt(d.size) + ' bytes'],
      ['Sent SHA-256', d.delivered ? d.delivered.sha256 : '–'],
      ['Sent size', d.delivered ? fmtInt(d.delivered.size) + ' bytes' : '–'],
      ['Issued', fmtTime(d.issued_at_ms)], ['Delivered to', d.client_addr],
      ['User agent', d.user_agent || '–'], ['Client', d.client || '–'], ['Bound', fmtTime(d.bound_at_ms)],
      ['Confirmed', fmtTime(d.confirmed_at_ms)], ['Confirmed from', d.confirm_addr || '–'],
      ['Received SHA-256', d.received ? (d.received.sha256 || 'not sent (browser)') : '–'],
      ['Server', d.server],
    ];
    $('detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, v)]));
    $('detail-title').textContent = 'Delivery ' + short(d.delivery, 13);
    const has = !!d.receipt;
    $('detail-no-receipt').hidden = has;
    $('detail-receipt').hidden = !has;
    $('detail-receipt-payload').hidden = !has;
    $('detail-receipt').textContent = d.receipt || '';
    let payload = '';
    if (has) {
      try { payload = JSON.stringify(decodePayload(d.receipt), null, 2); } catch { payload = '(the receipt payload does not decode)'; }
    }
    $('detail-receipt-payload').textContent = payload;
    $('detail').hidden = false;
    $('detail').scrollIntoView({ block: 'nearest' });
  }

  // ---- loading ----------------------------------------------------------------------

  function fail(e) {
    if (e instanceof AuthError) {
      showSignin(e.message);
      return;
    }
    $('error').textContent = e.message;
    $('error').hidden = false;
  }

  async function refresh() {
    const [summary, contents, s] = await Promise.all([api('/api/summary'), api('/api/contents'), api('/api/series')]);
    renderSummary(summary);
    renderContents(contents);
    series = s;
    renderChart();
    $('error').hidden = true;
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  async function start() {
    showApp();
    try {
      await Promise.all([refresh(), loadDeliveries(false)]);
      document.body.dataset.ready = 'true';
    } catch (e) {
      fail(e);
      return;
    }
    clearInterval(timer);
    timer = setInterval(() => refresh().catch(fail), REFRESH_MS);
  }

  function init() {
    takeTokenFromHash();
    token = sessionStorage.getItem(TOKEN_KEY);
    $('signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('token').value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      token = value;
      $('token').value = '';
      start();
    });
    $('signout').addEventListener('click', () => showSignin(''));
    $('refresh').addEventListener('click', () => {
      refresh().catch(fail);
      loadDeliveries(false).catch(fail);
    });
    $('search').addEventListener('submit', (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      query = {
        content: f.get('content').trim(), client: f.get('client').trim(), kind: f.get('kind'), status: f.get('status'),
      };
      loadDeliveries(false).catch(fail);
    });
    $('more').addEventListener('click', () => loadDeliveries(true).catch(fail));
    $('detail-close').addEventListener('click', () => { $('detail').hidden = true; });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(renderChart, 100);
    });
    if (token) start();
    else showSignin('');
  }

  init();
})();
