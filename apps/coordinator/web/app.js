// The fedsynth dashboard: plain browser JavaScript over the coordinator's REST API. The API token
// lives in localStorage; every call sends it as a bearer token. Polls every 2 s for live updates.
(() => {
  // The round stages in order, from the coordinator at sign-in (GET /api/me).
  let STAGES = [];
  const COLORS = ['#8da0cb', '#66c2a5', '#a6d854', '#fc8d62', '#e78ac3', '#ffd92f', '#e5c494', '#b3b3b3'];
  const SITE_COLORS = [
    '#1b9e77',
    '#d95f02',
    '#7570b3',
    '#e7298a',
    '#66a61e',
    '#e6ab02',
    '#a6761d',
    '#666666',
  ];
  const $ = (sel) => document.querySelector(sel);
  let token = localStorage.getItem('fedsynth.token') || '';
  let role = null;
  let selected = null;
  const charts = new Map();
  let sampleFor = null;

  async function api(path, opts = {}) {
    const res = await fetch(path, {
      ...opts,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        ...(opts.headers || {}),
      },
    });
    if (!res.ok) {
      let msg = `${res.status}`;
      try {
        const j = await res.json();
        msg = `${j.code || res.status}: ${j.message || ''}`;
      } catch {}
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    const type = res.headers.get('content-type') || '';
    return type.includes('json') ? res.json() : res.blob();
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      // Through the CSSOM: the dashboard's Content-Security-Policy refuses style attributes.
      else if (k === 'style') e.style.cssText = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const ago = (iso) => {
    if (!iso) return 'never';
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    return s < 60
      ? `${s} s ago`
      : s < 3600
        ? `${Math.round(s / 60)} min ago`
        : new Date(iso).toLocaleString();
  };
  const mb = (n) => `${(Number(n) / 1e6).toFixed(1)} MB`;

  async function signIn(t) {
    token = t;
    try {
      const me = await api('/api/me');
      role = me.role;
      STAGES = me.roundStages;
    } catch (err) {
      role = null;
      $('#signin-error').textContent = `sign-in failed: ${err.message}`;
      showSignIn();
      return;
    }
    localStorage.setItem('fedsynth.token', token);
    $('#signin').hidden = true;
    $('#app').hidden = false;
    $('#signout').hidden = false;
    $('#who').textContent = `signed in as ${role}`;
    document.body.classList.toggle('is-admin', role === 'admin');
    await refresh();
  }

  function showSignIn() {
    $('#signin').hidden = false;
    $('#app').hidden = true;
    $('#signout').hidden = true;
    $('#who').textContent = '';
  }

  async function control(fed, action) {
    try {
      await api(`/api/federations/${fed.id}/${action}`, { method: 'POST' });
    } catch (err) {
      alert(`${action} failed: ${err.message}`);
    }
    await refresh();
  }

  async function siteAction(site, action) {
    try {
      await api(`/api/sites/${site.id}/${action}`, { method: 'POST' });
    } catch (err) {
      alert(`${action} failed: ${err.message}`);
    }
    await refresh();
  }

  function renderFederations(feds, roundCounts) {
    const body = $('#federations tbody');
    body.replaceChildren(
      ...feds.map((f) => {
        const controls = el('td', { class: 'admin' });
        for (const a of ['start', 'pause', 'resume', 'stop']) {
          const allowed = {
            start: ['created'],
            pause: ['running'],
            resume: ['paused'],
            stop: ['created', 'running', 'paused'],
          }[a];
          if (allowed.includes(f.status))
            controls.append(
              el(
                'button',
                {
                  onclick: (e) => {
                    e.stopPropagation();
                    void control(f, a);
                  },
                },
                a,
              ),
              ' ',
            );
        }
        return el(
          'tr',
          {
            class: `clickable${selected === f.id ? ' selected' : ''}`,
            onclick: () => select(f.id),
            'data-federation': f.name,
          },
          el('td', {}, f.name),
          el('td', {}, `${f.task?.source ?? 'mr'} → ${f.task?.target ?? 'ct'}`),
          el('td', {}, el('span', { class: `status ${f.status}` }, f.status)),
          el('td', {}, roundCounts.get(f.id) ?? '-'),
          el('td', {}, f.currentCheckpoint ? el('code', {}, f.currentCheckpoint.slice(0, 12)) : '-'),
          controls,
        );
      }),
    );
  }

  function chart(div, rounds, series) {
    const title = div.dataset.title;
    const data = [rounds, ...series.map((s) => s.values)];
    const opts = {
      title,
      width: Math.max(380, div.clientWidth || 420),
      height: 220,
      scales: { x: { time: false } },
      axes: [{ label: 'round', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] }, {}],
      series: [
        { label: 'round' },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width || 1.5,
          points: { show: true },
        })),
      ],
    };
    const old = charts.get(div);
    if (old && old.series.length === opts.series.length) {
      old.setData(data);
      return;
    }
    old?.destroy();
    div.replaceChildren();
    charts.set(div, new uPlot(opts, data, div));
  }

  function renderCharts(metrics, perSite, sites) {
    const rounds = [...new Set(metrics.map((m) => m.round))].sort((a, b) => a - b);
    const names = new Map((sites || []).map((s) => [s.id, s.name]));
    for (const div of document.querySelectorAll('.chart')) {
      const metric = div.dataset.metric;
      const global = rounds.map(
        (r) => metrics.find((m) => m.round === r && m.site === null && m.name === metric)?.value ?? null,
      );
      const series = [{ label: 'global', values: global, color: '#1d2430', width: 2.5 }];
      if (perSite) {
        // Sorted by site name, so each site keeps its colour on every chart.
        const siteIds = [
          ...new Set(perSite.filter((m) => m.site && m.name === metric).map((m) => m.site)),
        ].sort((x, y) => String(names.get(x) ?? x).localeCompare(String(names.get(y) ?? y)));
        siteIds.forEach((id, i) => {
          series.push({
            label: names.get(id) || id.slice(0, 8),
            values: rounds.map(
              (r) => perSite.find((m) => m.round === r && m.site === id && m.name === metric)?.value ?? null,
            ),
            color: SITE_COLORS[i % SITE_COLORS.length],
          });
        });
      }
      div.dataset.points = String(global.filter((v) => v !== null).length);
      chart(div, rounds, series);
    }
  }

  function renderRounds(rounds, sites) {
    const names = new Map((sites || []).map((s) => [s.id, s.name]));
    const body = $('#rounds tbody');
    body.replaceChildren(
      ...[...rounds].reverse().map((r) => {
        const times = r.stageTimes || {};
        const start = Date.parse(r.startedAt);
        const end = r.finishedAt ? Date.parse(r.finishedAt) : Date.now();
        const total = Math.max(1, end - start);
        const bar = el('div', { class: 'timeline' });
        const marks = STAGES.map((s) => [s, Date.parse(times[s])]).filter(([, t]) => Number.isFinite(t));
        marks.forEach(([s, t], i) => {
          const next = i + 1 < marks.length ? marks[i + 1][1] : end;
          const w = ((next - t) / total) * 100;
          bar.append(
            el('span', {
              style: `width:${w}%;background:${COLORS[STAGES.indexOf(s)]}`,
              title: `${s}: ${((next - t) / 1000).toFixed(1)} s`,
            }),
          );
        });
        const drops = (r.dropouts || [])
          .map((d) => `${names.get(d.siteId) || d.siteId.slice(0, 8)} @ ${d.stage}`)
          .join(', ');
        return el(
          'tr',
          { 'data-round': r.number },
          el('td', {}, r.number),
          el(
            'td',
            {},
            el('span', { class: `status ${r.stage}` }, r.stage),
            r.error ? el('div', { class: 'muted' }, r.error) : '',
          ),
          el('td', {}, bar),
          el('td', {}, (r.participants || []).length),
          el('td', {}, drops || '-'),
          el('td', {}, `${mb(r.bytesIn || 0)} / ${mb(r.bytesOut || 0)}`),
          el(
            'td',
            {},
            r.finishedAt ? ((end - start) / 1000).toFixed(0) : `${((end - start) / 1000).toFixed(0)} …`,
          ),
        );
      }),
    );
    $('#rounds .legend').replaceChildren(
      ...STAGES.map((s, i) => el('span', {}, el('i', { style: `background:${COLORS[i]}` }), s)),
    );
  }

  function renderSites(sites) {
    $('#sites tbody').replaceChildren(
      ...sites.map((s) => {
        const actions = el('td');
        if (s.status !== 'approved')
          actions.append(el('button', { onclick: () => siteAction(s, 'approve') }, 'approve'), ' ');
        if (s.status !== 'revoked')
          actions.append(el('button', { onclick: () => siteAction(s, 'revoke') }, 'revoke'));
        return el(
          'tr',
          { 'data-site': s.name },
          el(
            'td',
            {},
            el('span', { class: `dot${s.online ? ' online' : ''}`, title: s.online ? 'online' : 'offline' }),
          ),
          el('td', {}, s.name),
          el('td', {}, el('span', { class: `status ${s.status}` }, s.status)),
          el('td', {}, s.online ? 'connected now' : ago(s.lastSeenAt)),
          el('td', {}, s.backend || '-'),
          el('td', {}, s.device || '-'),
          el('td', {}, s.sampleCount ?? '-'),
          actions,
        );
      }),
    );
  }

  async function renderSample(fed) {
    if (!fed.currentCheckpoint || sampleFor === fed.currentCheckpoint) return;
    sampleFor = fed.currentCheckpoint;
    try {
      const blob = await api(`/api/federations/${fed.id}/sample?checkpoint=${fed.currentCheckpoint}`);
      const img = $('#sample-img');
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
      img.dataset.checkpoint = fed.currentCheckpoint;
    } catch (err) {
      sampleFor = null;
      $('#sample-img').alt = `sample unavailable: ${err.message}`;
    }
  }

  async function select(id) {
    selected = id;
    for (const c of charts.values()) c.destroy();
    charts.clear();
    for (const div of document.querySelectorAll('.chart')) div.replaceChildren();
    sampleFor = null;
    await refresh();
  }

  async function refresh() {
    if (!role) return;
    try {
      const feds = await api('/api/federations');
      if (!selected && feds.length) selected = (feds.find((f) => f.status === 'running') || feds[0]).id;
      const counts = new Map();
      let current = null;
      for (const f of feds) {
        if (f.id === selected) current = f;
      }
      if (current) {
        const [rounds, metrics, perSite, sites] = await Promise.all([
          api(`/api/federations/${current.id}/rounds`),
          api(`/api/federations/${current.id}/metrics`),
          role === 'admin' ? api(`/api/federations/${current.id}/metrics?perSite=1`) : null,
          role === 'admin' ? api(`/api/federations/${current.id}/sites`) : null,
        ]);
        counts.set(current.id, rounds.filter((r) => r.stage === 'completed').length);
        $('#federation').hidden = false;
        $('#fed-title').textContent = `${current.name} (${current.status})`;
        const running = rounds.find((r) => !['completed', 'failed', 'aborted'].includes(r.stage));
        $('#live').textContent = running
          ? `round ${running.number} in ${running.stage} — updating live`
          : `${rounds.length} rounds; updated ${new Date().toLocaleTimeString()}`;
        renderRounds(rounds, sites);
        renderCharts(metrics, perSite, sites);
        if (sites) renderSites(sites);
        $('#model-sha').textContent = current.currentCheckpoint || 'no model yet';
        $('#download').disabled = !current.currentCheckpoint;
        $('#download').onclick = async () => {
          const blob = await api(`/api/checkpoints/${current.currentCheckpoint}`);
          const a = el('a', {
            href: URL.createObjectURL(blob),
            download: `${current.name}-${current.currentCheckpoint.slice(0, 12)}.safetensors`,
          });
          a.click();
        };
        void renderSample(current);
      }
      renderFederations(feds, counts);
    } catch (err) {
      if (err.status === 401) {
        role = null;
        localStorage.removeItem('fedsynth.token');
        showSignIn();
        $('#signin-error').textContent = 'the token was refused; sign in again';
      } else $('#live').textContent = `update failed: ${err.message}`;
    }
  }

  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('#signin-error').textContent = '';
    void signIn($('#token').value.trim());
  });
  $('#signout').addEventListener('click', () => {
    localStorage.removeItem('fedsynth.token');
    role = null;
    token = '';
    showSignIn();
  });
  setInterval(() => void refresh(), 2000);
  if (token) void signIn(token);
  else showSignIn();
})();
