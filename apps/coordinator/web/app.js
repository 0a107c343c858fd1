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
  // The id of the signed-in token (its row in the token list is marked).
  let myTokenId = null;
  // Whether the token may manage API tokens: an admin token for every federation.
  let managesTokens = false;
  // The federations offered in the token form, by id (re-drawn only when they change).
  let tokenFedsKey = '';
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
    let scope = '';
    try {
      const me = await api('/api/me');
      role = me.role;
      myTokenId = me.id;
      STAGES = me.roundStages;
      managesTokens = role === 'admin' && me.federations === null;
      if (me.federations) scope = ` (limited to ${me.federations.map((f) => f.name).join(', ')})`;
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
    $('#who').textContent = `signed in as ${role}${scope}`;
    document.body.classList.toggle('is-admin', role === 'admin');
    document.body.classList.toggle('manages-tokens', managesTokens);
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
          el('td', {}, `${f.config?.task?.source ?? '?'} → ${f.config?.task?.target ?? '?'}`),
          el(
            'td',
            {},
            el('span', { class: `status ${f.status}`, title: f.statusReason || '' }, f.status),
            f.statusReason ? el('div', { class: 'muted reason' }, f.statusReason) : '',
          ),
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

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '-');

  function tokenState(t) {
    if (t.revokedAt) return 'revoked';
    if (t.expiresAt && Date.parse(t.expiresAt) <= Date.now()) return 'expired';
    return 'active';
  }

  async function revokeToken(t) {
    const own = t.id === myTokenId ? ' This is the token this dashboard is signed in with.' : '';
    if (
      !confirm(
        `Revoke the ${t.role} token "${t.label || t.id}"? Whoever uses it is refused from now on.${own}`,
      )
    )
      return;
    try {
      await api(`/api/tokens/${t.id}/revoke`, { method: 'POST' });
    } catch (err) {
      alert(`revoke failed: ${err.message}`);
    }
    await refresh();
  }

  function renderTokens(tokens) {
    $('#tokens tbody').replaceChildren(
      ...tokens.map((t) => {
        const state = tokenState(t);
        return el(
          'tr',
          { 'data-token': t.id },
          el(
            'td',
            {},
            t.label || el('span', { class: 'muted' }, t.id.slice(0, 8)),
            t.id === myTokenId ? el('span', { class: 'muted' }, ' (this dashboard)') : '',
          ),
          el('td', {}, t.role),
          el('td', {}, el('span', { class: `state ${state}` }, state)),
          el('td', {}, t.federations ? t.federations.join(', ') : 'all'),
          el('td', {}, when(t.createdAt)),
          el('td', {}, t.expiresAt ? when(t.expiresAt) : 'never'),
          el('td', {}, ago(t.lastUsedAt)),
          el('td', {}, state === 'revoked' ? '' : el('button', { onclick: () => revokeToken(t) }, 'revoke')),
        );
      }),
    );
  }

  /** The federation choices of the token form; checked boxes stay checked across refreshes. */
  function renderTokenFederations(feds) {
    const key = feds.map((f) => `${f.id}:${f.name}`).join(',');
    if (key === tokenFedsKey) return;
    tokenFedsKey = key;
    const box = $('#token-federations');
    const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    box.replaceChildren(
      feds.length ? 'federations (none: all)' : '',
      ...feds.map((f) => {
        const input = el('input', { type: 'checkbox', value: f.id });
        input.checked = checked.has(f.id);
        return el('label', {}, input, ` ${f.name}`);
      }),
    );
  }

  async function createToken() {
    $('#token-error').textContent = '';
    const hours = $('#token-hours').value.trim();
    const federations = [...document.querySelectorAll('#token-federations input:checked')].map(
      (i) => i.value,
    );
    const body = {
      role: $('#token-role').value,
      label: $('#token-label').value.trim(),
      ...(hours ? { expiresInHours: Number(hours) } : {}),
      ...(federations.length ? { federations } : {}),
    };
    try {
      const t = await api('/api/tokens', { method: 'POST', body: JSON.stringify(body) });
      // Shown here once: the coordinator keeps only its hash.
      $('#new-token-value').value = t.token;
      $('#copy-state').textContent = '';
      $('#new-token').hidden = false;
      $('#token-form').reset();
    } catch (err) {
      $('#token-error').textContent = `not created: ${err.message}`;
    }
    await refresh();
  }

  function hideNewToken() {
    $('#new-token-value').value = '';
    $('#new-token').hidden = true;
  }

  async function copyNewToken() {
    const input = $('#new-token-value');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      // No clipboard API (a plain-http page that is not localhost): the selection still copies.
      input.select();
      document.execCommand('copy');
    }
    $('#copy-state').textContent = 'copied';
  }

  function renderAudit(events, feds) {
    const names = new Map(feds.map((f) => [f.id, f.name]));
    $('#audit tbody').replaceChildren(
      ...events.map((e) =>
        el(
          'tr',
          { 'data-action': e.action || '' },
          el('td', {}, when(e.at)),
          el(
            'td',
            {},
            e.actorRole ? `${e.actorLabel || (e.actorTokenId || '').slice(0, 8)} (${e.actorRole})` : '-',
          ),
          el('td', {}, el('code', {}, e.address)),
          el('td', {}, e.action || '-'),
          el(
            'td',
            { title: e.target || '' },
            names.get(e.target) || (e.target ? e.target.slice(0, 12) : '-'),
          ),
          el('td', {}, el('span', { class: `status ${e.status < 400 ? 'completed' : 'failed'}` }, e.status)),
        ),
      ),
    );
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
      if (role === 'admin') {
        const [tokens, events] = await Promise.all([
          managesTokens ? api('/api/tokens') : null,
          api('/api/audit?limit=50'),
        ]);
        if (tokens) {
          renderTokens(tokens);
          renderTokenFederations(feds);
        }
        renderAudit(events, feds);
      }
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
    managesTokens = false;
    token = '';
    hideNewToken();
    showSignIn();
  });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void createToken();
  });
  $('#copy-token').addEventListener('click', () => void copyNewToken());
  $('#dismiss-token').addEventListener('click', hideNewToken);
  setInterval(() => void refresh(), 2000);
  if (token) void signIn(token);
  else showSignIn();
})();
