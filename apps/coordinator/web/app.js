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
  // Counts sign-ins and sign-outs: an update still in flight from an earlier one must not act on
  // the page (its next calls would carry the new token, and its refusal would replace the message
  // of a failed sign-in with "sign in again").
  let session = 0;
  let role = null;
  // The id of the signed-in token (its row in the token list is marked).
  let myTokenId = null;
  // Whether the token may manage API tokens: an admin token for every federation.
  let managesTokens = false;
  // The federations offered in the token form, by id (re-drawn only when they change).
  let tokenFedsKey = '';
  let selected = null;
  // The selected federation as last fetched (the edit and enrollment forms act on it).
  let currentFed = null;
  // Token ids -> "label (role)", for the configuration versions' "who" (admins for every federation).
  let tokenNames = new Map();
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
      let code = null;
      let detail = '';
      try {
        const j = await res.json();
        msg = `${j.code || res.status}: ${j.message || ''}`;
        code = j.code || null;
        detail = j.message || '';
      } catch {}
      const err = new Error(msg);
      err.status = res.status;
      // The coordinator's { code, message }: forms lay the message out next to their fields.
      err.code = code;
      err.detail = detail;
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
    session++;
    token = t;
    let scope = '';
    try {
      const me = await api('/api/me');
      role = me.role;
      myTokenId = me.id;
      STAGES = me.roundStages;
      managesTokens = role === 'admin' && me.federations === null;
      configInfo = null;
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
    // Creating federations, like managing tokens, needs an admin token for every federation.
    document.body.classList.toggle('creates-federations', managesTokens);
    // The forms and the versions list (keys in the schema's order) need the configuration's schema.
    if (role === 'admin') await loadConfigInfo(null);
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
          el(
            'td',
            {},
            `${(f.config?.task?.sources ?? [f.config?.task?.source ?? '?']).join(' + ')} → ${f.config?.task?.target ?? '?'}`,
          ),
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
    if (old && old.series.length === opts.series.length && old.fedsynthTitle === title) {
      old.setData(data);
      return;
    }
    old?.destroy();
    div.replaceChildren();
    const made = new uPlot(opts, data, div);
    made.fedsynthTitle = title;
    charts.set(div, made);
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
          el(
            'td',
            { class: 'admin', 'data-config-version': r.configVersion ?? '' },
            r.configVersion == null
              ? '-'
              : el(
                  'button',
                  {
                    type: 'button',
                    class: 'linkish',
                    title: `show configuration version ${r.configVersion}`,
                    onclick: () => showVersion(r.configVersion),
                  },
                  `v${r.configVersion}`,
                ),
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

  /** The model a federation publishes: its server moving average where it keeps one. */
  const publishedModel = (fed) => fed.currentModel || fed.currentCheckpoint;

  async function renderSample(fed) {
    const model = publishedModel(fed);
    if (!model || sampleFor === model) return;
    sampleFor = model;
    try {
      const blob = await api(`/api/federations/${fed.id}/sample?checkpoint=${model}`);
      const img = $('#sample-img');
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
      img.dataset.checkpoint = model;
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

  /** Copies a shown-once secret from its read-only field; `state` says what happened. */
  async function copyFrom(input, state) {
    try {
      await navigator.clipboard.writeText(input.value);
      state.textContent = 'copied';
    } catch {
      // No clipboard API (a plain-http page that is not localhost): the selection still copies.
      input.focus();
      input.select();
      const copied = document.execCommand('copy');
      state.textContent = copied ? 'copied' : 'selected: press Ctrl+C (⌘C) to copy';
    }
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

  // ---- Configuration forms ----------------------------------------------------------------------
  // Built from the configuration's JSON Schema (GET /api/federation-config, fetched once per
  // sign-in): a collapsible section per top-level property; a select for an enum and for the kind
  // of a discriminated union (strategy, secagg.graph), whose fields follow the kind chosen; number
  // inputs for numbers (empty: null where the schema allows null, else left out); a checkbox for a
  // boolean; a comma-separated list for an array of numbers; JSON text for anything else. The
  // coordinator validates with the same schema: its 400 message ("path: problem; ...") is laid out
  // next to the fields it names, anything no field claims at the top of the form.

  /** { schema, defaults } from the coordinator. */
  let configInfo = null;
  /** Sections open when a form opens (the others stay folded until an error lands in them). */
  const OPEN_SECTIONS = new Set(['task', 'plan']);

  const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
  function deepEqual(a, b) {
    if (a === b) return true;
    if (Array.isArray(a) && Array.isArray(b))
      return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
    if (isObj(a) && isObj(b)) {
      const ka = Object.keys(a);
      return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
    }
    return false;
  }

  /**
   * What `next` (a whole configuration read from a form) changes in `current`, as a PATCH body:
   * objects key by key, a union of another kind whole (the coordinator then replaces it), lists
   * and scalars whole. undefined: nothing changed.
   */
  function configDiff(current, next) {
    if (isObj(current) && isObj(next) && (!('kind' in next) || next.kind === current.kind)) {
      const out = {};
      for (const [k, v] of Object.entries(next)) {
        if (v === undefined) continue;
        const d = configDiff(current[k], v);
        if (d !== undefined) out[k] = d;
      }
      if (!Object.keys(out).length) return undefined;
      return 'kind' in next ? { kind: next.kind, ...out } : out;
    }
    return deepEqual(current, next) ? undefined : next;
  }

  /**
   * A configuration with its keys in the schema's order (the database keeps JSON objects in an
   * order of its own); keys the schema does not know come last.
   */
  function ordered(value, raw) {
    if (!isObj(value) || !configInfo) return value;
    let s = resolveRef(raw);
    const disc = discriminatorOf(s);
    if (disc) s = disc.alts.find((a) => constOf(a.properties[disc.key]) === value[disc.key]) || {};
    else s = nullableOf(s)[0];
    const props = isObj(s.properties) ? s.properties : {};
    const keys = [
      ...Object.keys(props).filter((k) => k in value),
      ...Object.keys(value).filter((k) => !(k in props)),
    ];
    return Object.fromEntries(keys.map((k) => [k, ordered(value[k], props[k])]));
  }

  /** A configuration as `path -> JSON text` of its leaves (objects are walked, lists are leaves). */
  function flatten(v, prefix = '', out = new Map()) {
    if (isObj(v)) for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
    else out.set(prefix, JSON.stringify(v));
    return out;
  }

  /** "path: old → new" for each leaf that differs between two configurations. */
  function changesBetween(a, b) {
    const fa = flatten(a);
    const fb = flatten(b);
    return [...new Set([...fb.keys(), ...fa.keys()])]
      .filter((k) => fa.get(k) !== fb.get(k))
      .map((k) => `${k}: ${fa.get(k) ?? '-'} → ${fb.get(k) ?? '-'}`);
  }

  /** The server's "path: problem; path: problem" as [path, problem] pairs ('' when none is named). */
  function problemsOf(message) {
    return String(message || '')
      .split('; ')
      .filter(Boolean)
      .map((p) => {
        const m = /^([A-Za-z_$][\w$-]*(?:\.[\w$-]+)*): ([\s\S]*)$/.exec(p);
        return m ? [m[1], m[2]] : ['', p];
      });
  }

  /** A schema with its local $ref (into $defs) followed. */
  function resolveRef(s) {
    let out = s || {};
    for (let i = 0; out.$ref && i < 16; i++) {
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(out.$ref);
      const target = m && configInfo.schema[m[1]]?.[decodeURIComponent(m[2])];
      if (!target) break;
      const { $ref: _ref, ...rest } = out;
      out = { ...target, ...rest };
    }
    return out;
  }

  /** [the schema without its null alternative, whether null is allowed]. */
  function nullableOf(s) {
    if (Array.isArray(s.type) && s.type.includes('null')) {
      const types = s.type.filter((t) => t !== 'null');
      return [{ ...s, type: types.length === 1 ? types[0] : types }, true];
    }
    if (Array.isArray(s.enum) && s.enum.includes(null))
      return [{ ...s, enum: s.enum.filter((x) => x !== null) }, true];
    const alts = s.anyOf || s.oneOf;
    if (Array.isArray(alts) && alts.some((a) => resolveRef(a).type === 'null')) {
      const rest = alts.filter((a) => resolveRef(a).type !== 'null');
      if (rest.length === 1) {
        const { anyOf: _a, oneOf: _o, ...outer } = s;
        return [{ ...resolveRef(rest[0]), ...outer }, true];
      }
    }
    return [s, false];
  }

  const constOf = (p) => {
    const s = resolveRef(p);
    return s.const !== undefined
      ? s.const
      : Array.isArray(s.enum) && s.enum.length === 1
        ? s.enum[0]
        : undefined;
  };

  /** { key, alts } when the schema is a union of objects told apart by a constant property. */
  function discriminatorOf(s) {
    const alts = (s.oneOf || s.anyOf || []).map(resolveRef);
    if (alts.length < 2 || !alts.every((a) => isObj(a.properties))) return null;
    const key = Object.keys(alts[0].properties).find((k) =>
      alts.every((a) => a.properties[k] && constOf(a.properties[k]) !== undefined),
    );
    return key ? { key, alts } : null;
  }

  const fmt = (v) => (v === null ? 'none' : Array.isArray(v) ? v.join(', ') : String(v));

  /** A field's hint: its range, whether it may be empty, its default, its description. */
  function hintOf(s, nullable, dflt) {
    const parts = [];
    const lo = s.minimum ?? (s.exclusiveMinimum !== undefined ? `>${s.exclusiveMinimum}` : undefined);
    const hi = s.maximum ?? (s.exclusiveMaximum !== undefined ? `<${s.exclusiveMaximum}` : undefined);
    if (lo !== undefined || hi !== undefined) parts.push(`${lo ?? ''} – ${hi ?? ''}`);
    else if (s.type === 'integer') parts.push('integer');
    if (s.type === 'array') {
      const item = resolveRef(s.items);
      const n = [s.minItems, s.maxItems].some((x) => x !== undefined)
        ? ` (${s.minItems ?? 0} to ${s.maxItems ?? 'any'})`
        : '';
      const r =
        item.minimum !== undefined || item.maximum !== undefined
          ? `, each ${item.minimum ?? ''} – ${item.maximum ?? ''}`
          : '';
      parts.push(`comma-separated${n}${r}`);
    }
    if (nullable) parts.push('empty: none');
    if (dflt !== undefined && !(nullable && dflt === null)) parts.push(`default ${fmt(dflt)}`);
    if (s.description) parts.push(s.description);
    return parts.join(' · ');
  }

  function registerField(fields, path, box, error) {
    fields.set(path, { box, error });
  }

  /** One value: an input, a select or a checkbox, with its hint and where its problems go. */
  function leafControl(path, raw, value, fields) {
    const [s, nullable] = nullableOf(raw);
    const name = path.join('.');
    const init = value !== undefined ? value : raw.default;
    const itemType = s.type === 'array' ? resolveRef(s.items).type : null;
    let input;
    let parse;
    let kind = 'text';
    if (Array.isArray(s.enum)) {
      input = el(
        'select',
        { name },
        ...(nullable ? [el('option', { value: '' }, '(none)')] : []),
        ...s.enum.map((x) => el('option', { value: String(x) }, String(x))),
      );
      input.value = init == null ? '' : String(init);
      parse = () =>
        input.value === '' ? (nullable ? null : undefined) : s.enum.find((x) => String(x) === input.value);
    } else if (s.type === 'boolean') {
      kind = 'checkbox';
      input = el('input', { type: 'checkbox', name });
      input.checked = init === true;
      parse = () => input.checked;
    } else if (s.type === 'integer' || s.type === 'number') {
      input = el('input', { type: 'number', name, step: s.type === 'integer' ? '1' : 'any' });
      if (s.minimum !== undefined) input.min = String(s.minimum);
      if (s.maximum !== undefined) input.max = String(s.maximum);
      if (nullable) input.placeholder = 'none';
      input.value = init == null ? '' : String(init);
      parse = (problems) => {
        if (input.validity.badInput) {
          problems.push([name, 'expected a number']);
          return undefined;
        }
        const t = input.value.trim();
        return t === '' ? (nullable ? null : undefined) : Number(t);
      };
    } else if (itemType === 'integer' || itemType === 'number') {
      input = el('input', { type: 'text', name, inputmode: 'decimal' });
      input.value = Array.isArray(init) ? init.join(', ') : '';
      if (nullable) input.placeholder = 'none';
      parse = (problems) => {
        const t = input.value.trim();
        if (t === '') return nullable ? null : undefined;
        const xs = t
          .split(/[\s,]+/)
          .filter(Boolean)
          .map(Number);
        if (xs.some((x) => !Number.isFinite(x))) {
          problems.push([name, 'expected numbers separated by commas']);
          return undefined;
        }
        return xs;
      };
    } else if (s.type === 'string') {
      input = el('input', { type: 'text', name });
      input.value = init == null ? '' : String(init);
      if (nullable) input.placeholder = 'none';
      parse = () => (input.value === '' ? (nullable ? null : undefined) : input.value);
    } else {
      // Anything the form does not know how to draw: its JSON, checked by the coordinator.
      input = el('textarea', { name, rows: '2', cols: '28' });
      input.value = init === undefined ? '' : JSON.stringify(init);
      parse = (problems) => {
        const t = input.value.trim();
        if (!t) return undefined;
        try {
          return JSON.parse(t);
        } catch {
          problems.push([name, 'expected JSON']);
          return undefined;
        }
      };
    }
    const error = el('div', { class: 'field-error error' });
    const hint = hintOf(s, nullable, raw.default);
    const box = el(
      'div',
      { class: `field ${kind}`, 'data-field': name },
      el('label', {}, el('span', { class: 'field-name' }, path.at(-1)), input),
      hint ? el('span', { class: 'hint muted' }, hint) : '',
      error,
    );
    // A field that differs from what the form opened with is marked; editing it clears its error.
    const onEdit = () => {
      box.classList.remove('invalid');
      error.replaceChildren();
      box.classList.toggle('changed', !deepEqual(parse([]) ?? null, init ?? null));
    };
    input.addEventListener('input', onEdit);
    input.addEventListener('change', onEdit);
    registerField(fields, name, box, error);
    return { node: box, read: parse };
  }

  /** The fields of an object schema (less `skip`, a union's kind), laid out in a grid. */
  function objectControl(path, s, value, fields, skip) {
    const children = Object.entries(s.properties || {})
      .filter(([k]) => k !== skip)
      .map(([k, sub]) => [k, controlFor([...path, k], sub, isObj(value) ? value[k] : undefined, fields)]);
    return {
      node: el('div', { class: 'rows' }, ...children.map(([, c]) => c.node)),
      read(problems) {
        const out = {};
        for (const [k, c] of children) {
          const v = c.read(problems);
          if (v !== undefined) out[k] = v;
        }
        return out;
      },
    };
  }

  /** A nested object or union inside a section: a fieldset that takes the problems of its path. */
  function frame(path, control, fields) {
    if (path.length === 1) return control; // a section: its <details> is the frame
    const name = path.join('.');
    const error = el('div', { class: 'field-error error' });
    const node = el('fieldset', { 'data-field': name }, el('legend', {}, path.at(-1)), error, control.node);
    registerField(fields, name, node, error);
    return { node, read: control.read };
  }

  /** A discriminated union: a select of its kinds, and the chosen kind's own fields. */
  function unionControl(path, s, { key, alts }, value, fields) {
    const kinds = alts.map((a) => constOf(a.properties[key]));
    const original = isObj(value) && kinds.includes(value[key]) ? value : null;
    const fallback = isObj(s.default) && kinds.includes(s.default[key]) ? s.default : null;
    const kindPath = [...path, key].join('.');
    const select = el(
      'select',
      { name: kindPath },
      ...kinds.map((k) => el('option', { value: String(k) }, String(k))),
    );
    const initKind = (original ?? fallback ?? { [key]: kinds[0] })[key];
    select.value = String(initKind);
    const kindError = el('div', { class: 'field-error error' });
    const kindBox = el(
      'div',
      { class: 'field', 'data-field': kindPath },
      el('label', {}, el('span', { class: 'field-name' }, key), select),
      el('span', { class: 'hint muted' }, `its fields follow the ${key} chosen`),
      kindError,
    );
    registerField(fields, kindPath, kindBox, kindError);
    const body = el('div', { class: 'variant' });
    let variant;
    const kindNow = () => kinds.find((k) => String(k) === select.value);
    const build = () => {
      const k = kindNow();
      // The kind's values as the form opened with them, else its defaults.
      const v = original?.[key] === k ? original : fallback?.[key] === k ? fallback : {};
      const prefix = `${path.join('.')}.`;
      for (const p of [...fields.keys()]) if (p.startsWith(prefix) && p !== kindPath) fields.delete(p);
      variant = objectControl(path, alts[kinds.indexOf(k)], v, fields, key);
      body.replaceChildren(variant.node);
    };
    build();
    select.addEventListener('change', () => {
      kindError.replaceChildren();
      kindBox.classList.toggle('changed', kindNow() !== initKind);
      build();
    });
    return frame(
      path,
      {
        node: el('div', { class: 'union' }, kindBox, body),
        read: (problems) => ({ [key]: kindNow(), ...variant.read(problems) }),
      },
      fields,
    );
  }

  function controlFor(path, raw, value, fields) {
    const s = resolveRef(raw);
    const disc = discriminatorOf(s);
    if (disc) return unionControl(path, s, disc, value, fields);
    if (s.type === 'object' && isObj(s.properties))
      return frame(path, objectControl(path, s, value, fields, null), fields);
    return leafControl(path, s, value, fields);
  }

  /**
   * Fills `form` (its .config-fields and .form-error; fields already in it, such as the name, are
   * kept and take their problems too) with the configuration's sections, showing `values`.
   * read(problems) gives the configuration as entered (problems: what the browser alone can tell);
   * show([[path, problem]]) lays problems out next to their fields.
   */
  function configForm(form, values) {
    const fields = new Map();
    for (const box of form.querySelectorAll(':scope > .field[data-field]'))
      registerField(fields, box.dataset.field, box, box.querySelector('.field-error'));
    const top = form.querySelector('.form-error');
    const sections = [];
    for (const [key, sub] of Object.entries(configInfo.schema.properties || {})) {
      const error = el('div', { class: 'field-error error' });
      const control = controlFor([key], sub, isObj(values) ? values[key] : undefined, fields);
      const details = el('details', { 'data-section': key }, el('summary', {}, key), error, control.node);
      details.open = OPEN_SECTIONS.has(key);
      registerField(fields, key, details, error);
      sections.push([key, control, details]);
    }
    form.querySelector('.config-fields').replaceChildren(...sections.map(([, , d]) => d));
    const clear = () => {
      top.replaceChildren();
      for (const { box, error } of fields.values()) {
        box.classList.remove('invalid');
        error.replaceChildren();
      }
    };
    clear();
    return {
      read(problems) {
        const out = {};
        for (const [key, control] of sections) {
          const v = control.read(problems);
          if (v !== undefined) out[key] = v;
        }
        return out;
      },
      clear,
      /** A message for the top of the form (nodes or text). */
      notice(...children) {
        top.append(el('div', {}, ...children));
      },
      show(problems) {
        let first = null;
        for (const [path, text] of problems) {
          const segs = path ? path.split('.') : [];
          let placed = false;
          // The longest path a field claims: model.channels.1 goes to model.channels, plan.foo to plan.
          for (let i = segs.length; i > 0 && !placed; i--) {
            const f = fields.get(segs.slice(0, i).join('.'));
            if (!f) continue;
            f.box.classList.add('invalid');
            f.error.append(el('div', {}, i === segs.length ? text : `${segs.slice(i).join('.')}: ${text}`));
            for (let d = f.box.closest('details'); d; d = d.parentElement?.closest('details') ?? null)
              d.open = true;
            first ??= f.box;
            placed = true;
          }
          if (!placed) top.append(el('div', {}, path ? `${path}: ${text}` : text));
        }
        const focus = first?.querySelector('input, select, textarea');
        if (focus) focus.focus();
        else top.scrollIntoView({ block: 'nearest' });
      },
    };
  }

  async function loadConfigInfo(state) {
    if (configInfo) return true;
    try {
      configInfo = await api('/api/federation-config');
      return true;
    } catch (err) {
      if (state) state.textContent = `the configuration schema is unavailable: ${err.message}`;
      return false;
    }
  }

  let createForm = null;

  async function openCreate() {
    if (!(await loadConfigInfo($('#create-state')))) return;
    $('#create-state').textContent = '';
    $('#create-name').value = '';
    createForm = configForm($('#create-form'), configInfo.defaults);
    $('#create-form').hidden = false;
    $('#new-federation').hidden = true;
    $('#create-name').focus();
  }

  function closeCreate() {
    createForm = null;
    $('#create-form').hidden = true;
    $('#create-form .config-fields').replaceChildren();
    $('#new-federation').hidden = false;
  }

  async function submitCreate() {
    if (!createForm) return;
    const problems = [];
    const body = { name: $('#create-name').value.trim(), ...createForm.read(problems) };
    createForm.clear();
    if (problems.length) return createForm.show(problems);
    const button = $('#create-form button[type="submit"]');
    button.disabled = true;
    try {
      const fed = await api('/api/federations', { method: 'POST', body: JSON.stringify(body) });
      closeCreate();
      $('#create-state').textContent = `created ${fed.name}`;
      await select(fed.id);
    } catch (err) {
      if (err.code === 'INVALID_INPUT') createForm.show(problemsOf(err.detail));
      else if (err.code === 'NAME_TAKEN') createForm.show([['name', err.detail]]);
      else createForm.show([['', `not created: ${err.message}`]]);
    } finally {
      button.disabled = false;
    }
  }

  /** The edit form: the federation it edits and the configuration it opened with. */
  let editing = null;

  async function openEdit() {
    const fed = currentFed;
    if (!fed || !(await loadConfigInfo($('#edit-state')))) return;
    $('#edit-state').textContent = '';
    editing = { id: fed.id, base: fed.config, form: configForm($('#edit-form'), fed.config) };
    $('#edit-form').hidden = false;
    $('#edit-config').hidden = true;
  }

  function closeEdit() {
    editing = null;
    $('#edit-form').hidden = true;
    $('#edit-form .config-fields').replaceChildren();
    $('#edit-config').hidden = false;
  }

  async function submitEdit() {
    if (!editing) return;
    const { form, id, base } = editing;
    const problems = [];
    const next = form.read(problems);
    form.clear();
    if (problems.length) return form.show(problems);
    const patch = configDiff(base, next);
    if (!patch) return form.notice('Nothing changed.');
    const button = $('#edit-form button[type="submit"]');
    button.disabled = true;
    try {
      const fed = await api(`/api/federations/${id}`, { method: 'PATCH', body: JSON.stringify(patch) });
      closeEdit();
      $('#edit-state').textContent =
        `saved as version ${fed.configVersion} (${[...flatten(patch).keys()].join(', ')})`;
      await refresh();
    } catch (err) {
      if (err.status === 409)
        form.notice(
          el(
            'strong',
            {},
            /meanwhile/.test(err.detail)
              ? 'Not saved: the configuration changed meanwhile; cancel, reopen and try again.'
              : 'Not saved: a round is running; try between rounds.',
          ),
          el('span', { class: 'muted' }, err.detail),
        );
      else if (err.code === 'INVALID_INPUT') form.show(problemsOf(err.detail));
      else form.notice(`not saved: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---- Configuration versions -------------------------------------------------------------------
  // Fetched again only when the selected federation or its version changes (the open JSON views
  // survive the 2 s refresh).
  let versionsKey = '';

  function who(id) {
    if (!id) return '-';
    if (id === myTokenId) return 'you (this dashboard)';
    return tokenNames.get(id) || id.slice(0, 8);
  }

  function renderVersions(versions) {
    const sorted = [...versions]
      .sort((a, b) => a.version - b.version)
      .map((v) => ({ ...v, config: ordered(v.config, configInfo?.schema) }));
    const latest = sorted.at(-1)?.version;
    $('#config-versions tbody').replaceChildren(
      ...sorted
        .map((v, i) => {
          const changes = i ? changesBetween(sorted[i - 1].config, v.config) : ['created'];
          const shown = changes.slice(0, 6);
          if (changes.length > shown.length) shown.push(`and ${changes.length - shown.length} more`);
          return el(
            'tr',
            { 'data-version': v.version },
            el(
              'td',
              {},
              `v${v.version}`,
              v.version === latest ? el('span', { class: 'muted' }, ' (current)') : '',
            ),
            el('td', {}, when(v.createdAt)),
            el('td', {}, who(v.createdBy)),
            el('td', { class: 'changes' }, ...shown.map((c) => el('div', {}, c))),
            el(
              'td',
              {},
              el('details', {}, el('summary', {}, 'JSON'), el('pre', {}, JSON.stringify(v.config, null, 2))),
            ),
          );
        })
        .reverse(),
    );
  }

  /** Opens a version's JSON in the list (from the rounds table's config column). */
  function showVersion(n) {
    const row = document.querySelector(`#config-versions tr[data-version="${Number(n)}"]`);
    if (!row) return;
    for (const r of document.querySelectorAll('#config-versions tr.focus')) r.classList.remove('focus');
    row.classList.add('focus');
    row.querySelector('details').open = true;
    row.scrollIntoView({ block: 'center' });
  }

  // ---- Enrollment tokens ------------------------------------------------------------------------

  async function issueEnrollmentToken() {
    const fed = currentFed;
    $('#enroll-error').textContent = '';
    if (!fed) return;
    const siteName = $('#enroll-site').value.trim();
    const hours = $('#enroll-hours').value.trim();
    if (!siteName) {
      $('#enroll-error').textContent = 'a site name is needed';
      return;
    }
    try {
      const t = await api(`/api/federations/${fed.id}/enrollment-tokens`, {
        method: 'POST',
        body: JSON.stringify({ siteName, ...(hours ? { ttlHours: Number(hours) } : {}) }),
      });
      // Shown here once: the coordinator keeps only its hash.
      $('#enroll-token-value').value = t.token;
      $('#enroll-for').textContent = `site "${siteName}" of ${fed.name}`;
      $('#enroll-expiry').textContent = when(t.expiresAt);
      $('#enroll-copy-state').textContent = '';
      $('#new-enroll').hidden = false;
      $('#enroll-form').reset();
    } catch (err) {
      $('#enroll-error').textContent = `not issued: ${err.detail || err.message}`;
    }
  }

  function hideEnrollmentToken() {
    $('#enroll-token-value').value = '';
    $('#new-enroll').hidden = true;
  }

  async function select(id) {
    if (editing && editing.id !== id) closeEdit();
    if (selected !== id) {
      $('#edit-state').textContent = '';
      // The sample of the federation left behind goes too (a new one may have no model yet).
      const img = $('#sample-img');
      if (img.src) URL.revokeObjectURL(img.src);
      img.removeAttribute('src');
      delete img.dataset.checkpoint;
    }
    selected = id;
    for (const c of charts.values()) c.destroy();
    charts.clear();
    for (const div of document.querySelectorAll('.chart')) div.replaceChildren();
    sampleFor = null;
    await refresh();
  }

  async function refresh() {
    if (!role) return;
    const mine = session;
    try {
      const feds = await api('/api/federations');
      if (mine !== session) return;
      if (!selected && feds.length) selected = (feds.find((f) => f.status === 'running') || feds[0]).id;
      const counts = new Map();
      let current = null;
      for (const f of feds) {
        if (f.id === selected) current = f;
      }
      currentFed = current;
      let versions = null;
      if (current) {
        const key = `${current.id}:${current.configVersion}`;
        const [rounds, metrics, perSite, sites, fetchedVersions] = await Promise.all([
          api(`/api/federations/${current.id}/rounds`),
          api(`/api/federations/${current.id}/metrics`),
          role === 'admin' ? api(`/api/federations/${current.id}/metrics?perSite=1`) : null,
          role === 'admin' ? api(`/api/federations/${current.id}/sites`) : null,
          role === 'admin' && key !== versionsKey
            ? api(`/api/federations/${current.id}/config-versions`)
            : null,
        ]);
        if (mine !== session) return;
        if (fetchedVersions) {
          versions = fetchedVersions;
          versionsKey = key;
        }
        counts.set(current.id, rounds.filter((r) => r.stage === 'completed').length);
        $('#federation').hidden = false;
        $('#fed-title').textContent = `${current.name} (${current.status})`;
        const running = rounds.find((r) => !['completed', 'failed', 'aborted'].includes(r.stage));
        $('#live').textContent = running
          ? `round ${running.number} in ${running.stage} — updating live`
          : `${rounds.length} rounds; updated ${new Date().toLocaleTimeString()}`;
        renderRounds(rounds, sites);
        $('#config-current').textContent = `version ${current.configVersion}`;
        $('#edit-round-hint').textContent = running
          ? `round ${running.number} is running: saving is refused until it ends`
          : '';
        // MAE is in HU for a CT target, on the normalized 0..1 scale for MR and PET targets.
        const target = current.config?.task?.target ?? 'ct';
        const maeChart = document.querySelector('.chart[data-metric="mae"]');
        if (maeChart)
          maeChart.dataset.title =
            target === 'ct'
              ? 'validation MAE (HU)'
              : `validation MAE (${target.toUpperCase()}, normalized 0..1)`;
        renderCharts(metrics, perSite, sites);
        if (sites) renderSites(sites);
        const model = publishedModel(current);
        $('#model-sha').textContent = model || 'no model yet';
        $('#download').disabled = !model;
        $('#download').onclick = async () => {
          const blob = await api(`/api/checkpoints/${model}`);
          const a = el('a', {
            href: URL.createObjectURL(blob),
            download: `${current.name}-${model.slice(0, 12)}.safetensors`,
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
        if (mine !== session) return;
        if (tokens) {
          tokenNames = new Map(tokens.map((t) => [t.id, `${t.label || t.id.slice(0, 8)} (${t.role})`]));
          renderTokens(tokens);
          renderTokenFederations(feds);
        }
        if (versions) renderVersions(versions);
        renderAudit(events, feds);
      }
    } catch (err) {
      if (mine !== session) return;
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
    session++;
    localStorage.removeItem('fedsynth.token');
    role = null;
    managesTokens = false;
    token = '';
    configInfo = null;
    versionsKey = '';
    tokenNames = new Map();
    hideNewToken();
    hideEnrollmentToken();
    closeCreate();
    closeEdit();
    $('#create-state').textContent = '';
    $('#edit-state').textContent = '';
    showSignIn();
  });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void createToken();
  });
  $('#copy-token').addEventListener('click', () => void copyFrom($('#new-token-value'), $('#copy-state')));
  $('#dismiss-token').addEventListener('click', hideNewToken);
  $('#new-federation').addEventListener('click', () => void openCreate());
  $('#create-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void submitCreate();
  });
  $('#create-form .cancel').addEventListener('click', closeCreate);
  $('#edit-config').addEventListener('click', () => void openEdit());
  $('#edit-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void submitEdit();
  });
  $('#edit-form .cancel').addEventListener('click', closeEdit);
  $('#enroll-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void issueEnrollmentToken();
  });
  $('#copy-enroll').addEventListener(
    'click',
    () => void copyFrom($('#enroll-token-value'), $('#enroll-copy-state')),
  );
  $('#dismiss-enroll').addEventListener('click', hideEnrollmentToken);
  setInterval(() => void refresh(), 2000);
  if (token) void signIn(token);
  else showSignIn();
})();
