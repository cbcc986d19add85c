// The console's script: live updates (server-sent events, then the page's
// live parts fetched again), actions (forms posted to the console, whose
// answer is shown as text), and small helpers. Untrusted text (error
// messages, names) is only ever set with textContent.
(() => {
  'use strict';
  const base = '/_cloudhsm-local/console/';
  const body = document.body;
  const notice = document.getElementById('notice');
  const liveStatus = document.getElementById('live-status');

  // ---- the simulated clock in the header ----
  const clockEl = document.getElementById('clock');
  const nowEl = document.getElementById('clock-now');
  const modeEl = document.getElementById('clock-mode');
  let clockMs = Number(clockEl.dataset.ms), frozen = clockEl.dataset.frozen === 'true', clockAt = Date.now();
  const pad = (n) => String(n).padStart(2, '0');
  function showClock() {
    const d = new Date(frozen ? clockMs : clockMs + (Date.now() - clockAt));
    nowEl.textContent = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + 'Z';
    nowEl.dateTime = d.toISOString();
    modeEl.textContent = frozen ? 'frozen' : 'running';
  }
  function setClock(c) { clockMs = c.now; frozen = c.frozen; clockAt = Date.now(); showClock(); }
  showClock();
  setInterval(() => { if (!frozen) showClock(); }, 1000);

  // ---- refreshing the live parts ----
  // refresh fetches the page again. For an event b, the server may answer
  // with any page at least as new as the event (shared by every open
  // console); without one (after an action), with the estate as it is.
  let inflight = false, pending = null, etag = '';
  async function refresh(b) {
    const want = b ? b.gen + ',' + b.reqs : '';
    if (inflight) {
      pending = pending === '' || want === '' ? '' : want;
      return;
    }
    inflight = true;
    try {
      const headers = etag ? { 'If-None-Match': etag } : {};
      if (want) headers['X-Console-Seen'] = want;
      const res = await fetch(location.href, { cache: 'no-store', credentials: 'same-origin', headers });
      if (res.status === 200) {
        etag = res.headers.get('ETag') || '';
        swap(await res.text());
      }
    } catch (e) {
      // The server is gone for now; the stream says so and reconnects.
    }
    inflight = false;
    if (pending !== null) {
      const next = pending;
      pending = null;
      refresh(next === '' ? null : { gen: next.split(',')[0], reqs: next.split(',')[1] });
    }
  }
  function swap(html) {
    const doc = new DOMParser().parseFromString(html, 'text/html');
    const focused = document.activeElement && document.activeElement.id;
    const open = Array.from(document.querySelectorAll('details[open][id]'), (d) => d.id);
    doc.querySelectorAll('[data-live][id]').forEach((fresh) => {
      const old = document.getElementById(fresh.id);
      if (old && old.innerHTML !== fresh.innerHTML) old.replaceWith(document.adoptNode(fresh));
    });
    body.dataset.gen = doc.body.dataset.gen;
    body.dataset.reqs = doc.body.dataset.reqs;
    open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
    if (focused) {
      const el = document.getElementById(focused);
      if (el && el !== document.activeElement) el.focus();
    }
    filterSubnets();
  }

  // ---- the live stream ----
  function setLive(text, on) {
    liveStatus.textContent = text;
    liveStatus.classList.toggle('on', on);
  }
  function connect() {
    if (!body.dataset.events) return;
    const es = new EventSource(body.dataset.events);
    es.addEventListener('hello', (e) => {
      setLive('live', true);
      const b = JSON.parse(e.data);
      if (b.clock) setClock(b.clock);
      if (String(b.gen) !== body.dataset.gen || (body.dataset.page === 'requests' && String(b.reqs) !== body.dataset.reqs)) refresh(b);
    });
    es.addEventListener('change', (e) => {
      const b = JSON.parse(e.data);
      if (b.clock) setClock(b.clock);
      if (b.estate || b.all || b.faults || b.requests) refresh(b);
    });
    es.onerror = () => {
      setLive('reconnecting…', false);
      if (es.readyState === EventSource.CLOSED) {
        // Refused (too many streams, or the token is needed): try again later.
        setTimeout(connect, 10000);
      }
    };
  }
  connect();

  // ---- actions ----
  function say(text, kind) {
    notice.hidden = false;
    notice.className = 'notice ' + kind;
    notice.setAttribute('aria-live', kind === 'error' ? 'assertive' : 'polite');
    notice.textContent = text;
  }
  function offer(download) {
    const a = document.createElement('a');
    a.href = 'data:application/x-pem-file;base64,' + btoa(download.text);
    a.download = download.name;
    a.id = 'notice-download';
    a.textContent = 'Download ' + download.name;
    notice.append(' ', a);
  }
  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    const name = form.dataset.action;
    if (!name) return;
    ev.preventDefault();
    // One answer at a time per form. The button stays enabled (a disabled
    // button would lose the keyboard's focus); it says it is busy.
    if (form.dataset.busy) return;
    form.dataset.busy = '1';
    const button = ev.submitter;
    const data = new URLSearchParams(new FormData(form, button));
    if (button) button.setAttribute('aria-busy', 'true');
    say('Working…', 'busy');
    let r;
    try {
      const res = await fetch(base + 'actions/' + encodeURIComponent(name), {
        method: 'POST', body: data, credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      try { r = await res.json(); } catch (e) { r = { ok: false, message: 'The server answered ' + res.status + '.' }; }
    } catch (e) {
      r = { ok: false, message: 'The request failed: ' + e.message };
    }
    delete form.dataset.busy;
    if (button) button.removeAttribute('aria-busy');
    if (!r.ok) {
      say((r.code ? r.code + ': ' : '') + r.message, 'error');
      return;
    }
    say(r.message, 'ok');
    if (r.download) offer(r.download);
    if (r.location) { location.assign(r.location); return; }
    if (form.hasAttribute('data-reset')) form.reset();
    refresh();
  });

  // A file chosen is read into its text area.
  document.addEventListener('change', (ev) => {
    const input = ev.target;
    if (input.type === 'file' && input.dataset.into && input.files.length) {
      input.files[0].text().then((text) => { document.getElementById(input.dataset.into).value = text; });
    }
  });

  // "Two new subnets" fills the field with fresh subnet ids (learned on first sight).
  document.addEventListener('click', (ev) => {
    const button = ev.target.closest('[data-new-subnets]');
    if (!button) return;
    const hex = () => Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, '0')).join('').slice(0, 17);
    document.getElementById(button.dataset.newSubnets).value = 'subnet-' + hex() + ' subnet-' + hex();
  });

  // The subnets offered are those of the account and region typed.
  function filterSubnets() {
    const acct = document.getElementById('cc-account'), region = document.getElementById('cc-region');
    if (!acct || !region) return;
    document.querySelectorAll('#cc-known label[data-region]').forEach((l) => {
      l.hidden = l.dataset.region !== region.value.trim() || (l.dataset.account !== '' && l.dataset.account !== acct.value.trim());
      if (l.hidden) l.querySelector('input').checked = false;
    });
  }
  document.addEventListener('input', (ev) => { if (ev.target.id === 'cc-account' || ev.target.id === 'cc-region') filterSubnets(); });
  filterSubnets();

  // Signing out forgets the token cookie.
  const out = document.getElementById('logout');
  if (out) out.addEventListener('click', () => fetch(base + 'logout', { method: 'POST', credentials: 'same-origin' }).then(() => location.assign(base)));
})();
