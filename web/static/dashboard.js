// The live dashboard. One websocket (graphql-transport-ws) carries three
// subscriptions: gatewayStats (the rate chart and gateway tile),
// projectionStatus (the projections table) and events (the tail). The
// read-model tiles are queried over HTTP when events arrive (at most twice a
// second). After a disconnect it reconnects with backoff and resumes the
// tail after the last position it showed, so no event is missing. The
// projections table tells the serving generation from a rebuild, and
// offers the administrator's mutations (rebuild, retry, skip, cancel a
// rebuild) over HTTP where they apply, to a caller the gateway's viewer
// query says may use them; the top bar says who the page acts as, and,
// from five minutes before, when its token expires.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var httpUrl = location.origin + '/graphql';
  var wsUrl = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  var TAIL = 50;
  var WINDOW = 300; // seconds on the chart

  // ---- the token
  // A token authenticates HTTP and websocket alike. A link gives it in its
  // fragment, #token=... (a fragment stays in the browser: no server or
  // proxy log sees it), or, in older links, as ?token=...; either is taken
  // out of the address at once (and so out of the history and of what a
  // screen shows) and kept in localStorage for the next visits. A token
  // from the address that differs from the kept one does not replace it
  // unasked: the page asks first (a link can carry someone else's token).
  var KEY = 'cqrsgate:token';
  function tokenFromAddress() {
    var found = null;
    var params = new URLSearchParams(location.search);
    if (params.has('token')) {
      found = params.get('token');
      params.delete('token');
    }
    var rest = [], fromHash = null;
    location.hash.replace(/^#/, '').split('&').forEach(function (part) {
      if (part === 'token' || part.indexOf('token=') === 0) {
        var v = part.slice(6);
        try { v = decodeURIComponent(v); } catch (e) { /* not percent-encoded: as it is */ }
        fromHash = v;
      } else if (part) {
        rest.push(part);
      }
    });
    if (fromHash !== null) { found = fromHash; }
    if (found !== null) {
      var q = params.toString();
      history.replaceState(history.state, '', location.pathname + (q ? '?' + q : '') + (rest.length ? '#' + rest.join('&') : ''));
    }
    return found ? found.trim() : null;
  }
  var token = localStorage.getItem(KEY);
  var offered = null; // a token from the address waiting for an answer
  var fromAddress = tokenFromAddress();

  var state = { lastPosition: null, attempt: 0, ws: null, tilesTimer: null, retry: null };

  function setConn(s) {
    var el = $('conn');
    el.textContent = s;
    el.className = 'conn ' + s;
    document.body.dataset.conn = s;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
  }

  // gql posts a query and returns its data, or fails with the first of
  // its errors: an Error with the error's extensions code, rule and
  // requiredRole (FORBIDDEN's role, RULE_VIOLATION's rule).
  function gql(query, variables) {
    var headers = { 'Content-Type': 'application/json' };
    if (token) { headers.Authorization = 'Bearer ' + token; }
    return fetch(httpUrl, { method: 'POST', headers: headers, body: JSON.stringify({ query: query, variables: variables || {} }) })
      .then(function (r) {
        sampleClock(clock.coarse, Date.parse(r.headers.get('Date')));
        return r.json().catch(function () {
          throw gqlError({ message: 'the gateway answered HTTP ' + r.status + ' without a GraphQL response' });
        });
      })
      .then(function (r) {
        if (r.errors && r.errors.length) { throw gqlError(r.errors[0]); }
        return r.data;
      });
  }
  function gqlError(e) {
    var err = new Error(e.message || 'unknown error');
    var ext = e.extensions || {};
    err.code = ext.code || null;
    err.rule = ext.rule || null;
    err.requiredRole = ext.requiredRole || null;
    return err;
  }

  // ---- the chart
  var xs = [], ys = [];
  var plot = new uPlot({
    width: Math.max(280, $('chart').clientWidth - 16), height: 200,
    scales: { x: { time: true, range: function (u, min, max) { return [max - WINDOW, max]; } }, y: { range: function (u, min, max) { return [0, Math.max(5, max * 1.2)]; } } },
    axes: [
      { stroke: '#9da7b3', grid: { stroke: '#2d3540' }, space: 70,
        values: function (u, splits) { return splits.map(function (v) { return new Date(v * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }); }); } },
      { stroke: '#9da7b3', grid: { stroke: '#2d3540' } },
    ],
    series: [{}, { label: 'events/s', stroke: '#79c0ff', fill: 'rgba(121,192,255,.15)', width: 2 }],
  }, [xs, ys], $('chart'));
  window.addEventListener('resize', function () { plot.setSize({ width: Math.max(280, $('chart').clientWidth - 16), height: 200 }); });

  // count shows a figure the gateway may leave out (a tenant's caller is not
  // told every tenant's connections): "-" for null.
  function count(n) { return n === null || n === undefined ? '-' : String(n); }
  function onStats(s) {
    sampleClock(clock.fine, Date.parse(s.at));
    xs.push(Date.parse(s.at) / 1000);
    ys.push(Math.round(s.eventsPerSecond * 10) / 10);
    while (xs.length && xs[0] < xs[xs.length - 1] - WINDOW) { xs.shift(); ys.shift(); }
    plot.setData([xs, ys]);
    $('gateway').innerHTML =
      '<li><span>Head</span><span>' + s.head + '</span></li>' +
      '<li><span>Events/s</span><span>' + s.eventsPerSecond.toFixed(1) + '</span></li>' +
      '<li><span>Websocket clients</span><span data-testid="ws-clients">' + count(s.websocketConnections) + '</span></li>' +
      '<li><span>Live subscriptions</span><span>' + count(s.liveSubscriptions) + '</span></li>';
  }

  // ---- the projections table
  // projectionStatus lists every generation of every projection: the one
  // queries read (serving), a rebuild built beside it (the same version,
  // a later generation), the first build of a read model that does not
  // serve yet, and a version another release runs. Rows are kept by
  // projection, version and generation and their cells rewritten only
  // when they change: the list comes every second, and a button replaced
  // between the press and the release of a click would lose the click
  // (and a focused one its focus).
  var PROJECTION_FIELDS = 'name version generation status serving position lag lagSeconds failures lastError failedPosition failedEventId';
  var projections = { list: [], rows: {} };
  // The buttons show for a caller the gateway's viewer query says may
  // administer it (canAdministerGateway: an administrator without a
  // tenant; see "who the page acts as" below). A gateway older than
  // viewer does not tell a page its caller's roles: there the buttons
  // show until it refuses one. Either way a refusal (FORBIDDEN: the admin
  // role is needed, and no tenant; or UNAUTHORIZED) is shown with its
  // reason and the buttons are gone for that credential (a new token
  // brings them back).
  var admin = { refused: null, busy: {} };

  // mayAdminister says whether the projections' buttons show.
  function mayAdminister() {
    if (admin.refused) { return false; }
    if (who.state === 'known') { return !!who.viewer.canAdministerGateway; }
    return who.state === 'legacy';
  }

  // projectionKinds says what each generation of list is to the projection
  // it belongs to: 'serving', 'rebuild', 'building' (a first build: no
  // generation serves yet) or 'other' (another version), with the serving
  // generation of its name (or null).
  function projectionKinds(list) {
    var serving = {};
    list.forEach(function (p) { if (p.serving) { serving[p.name] = p; } });
    return list.map(function (p) {
      var s = serving[p.name] || null, kind = 'other';
      if (p.serving) {
        kind = 'serving';
      } else if (!s) {
        kind = 'building';
      } else if (p.version === s.version && p.generation > s.generation) {
        kind = 'rebuild';
      }
      return { p: p, kind: kind, serving: s };
    });
  }

  function generation(p) { return p.generation === undefined || p.generation === null ? '' : ' · generation ' + p.generation; }
  var ROLES = { serving: 'serving', rebuild: 'rebuild', building: 'first build, not serving yet', other: 'not serving' };

  // progress is how much of the log a generation that does not serve has
  // applied, in whole percents: its checkpoint against the head it lags.
  function progress(p) {
    var head = p.position + p.lag;
    return head > 0 ? Math.floor(100 * p.position / head) : 100;
  }

  // projectionCells returns the HTML of a row's cells but the last (the
  // actions), and the classes of its state and lag cells.
  function projectionCells(r) {
    var p = r.p, failed = p.status === 'FAILED';
    var behind = r.kind === 'serving' && !failed && p.lagSeconds > 5;
    var warn = '';
    if (failed && r.kind === 'rebuild') {
      warn = ' ⚠ rebuild failed' + (r.serving ? '; generation ' + r.serving.generation + ' still serves' : '');
    } else if (failed) {
      warn = ' ⚠ failed';
    } else if (behind) {
      warn = ' ⚠ behind';
    } else if (r.kind !== 'serving') {
      warn = ' · ' + progress(p) + '% built';
    }
    var checkpoint = String(p.position);
    if (r.kind !== 'serving') {
      var pct = progress(p);
      checkpoint = '<progress max="100" value="' + pct + '" aria-label="' + esc(p.name) + ' ' + esc(ROLES[r.kind]) + ': ' + pct + '% of the log applied"></progress> ' +
        p.position + ' of ' + (p.position + p.lag);
    }
    var error = p.lastError ? esc(p.lastError) : '';
    if (failed && p.failedPosition !== null && p.failedPosition !== undefined) {
      error = 'at position ' + p.failedPosition + (p.failedEventId ? ' (event ' + esc(p.failedEventId) + ')' : '') + (error ? ': ' + error : '');
    }
    return {
      html: [
        esc(p.name) + ' <span class="role role-' + r.kind + '">' + esc(ROLES[r.kind] + generation(p)) + '</span>',
        String(p.version),
        esc(p.status) + esc(warn),
        checkpoint,
        p.lag + ' (' + Number(p.lagSeconds).toFixed(1) + ' s)',
        error,
      ],
      stateClass: 'state-' + p.status + (behind ? ' behind' : ''),
      lagClass: behind ? 'behind' : '',
    };
  }

  // projectionActions lists the administrator's mutations that apply to a
  // row: a serving generation can be rebuilt unless a rebuild of it is
  // under way; a failed generation retried, or moved past the event it
  // failed on; a rebuild cancelled, and a failed one replaced by a new
  // one.
  function projectionActions(r, rebuilding) {
    var p = r.p, failed = p.status === 'FAILED', acts = [];
    if (failed) {
      acts.push({ act: 'retry', label: 'Retry', title: 'Apply the event ' + p.name + ' failed on again, and go on (every failed generation of ' + p.name + ')' });
      if (p.failedPosition !== null && p.failedPosition !== undefined) {
        acts.push({ act: 'skip', label: 'Skip event ' + p.failedPosition, title: 'Move past the event at position ' + p.failedPosition + ': the read model never applies it' });
      }
    }
    if (r.kind === 'serving' && !rebuilding[p.name]) {
      acts.push({ act: 'rebuild', label: 'Rebuild', title: 'Build ' + p.name + ' again from the start of the log beside this generation, which serves until the new one has caught up' });
    }
    if (r.kind === 'rebuild') {
      if (failed) {
        acts.push({ act: 'rebuild', label: 'Rebuild again', title: 'Drop this failed rebuild and start a new one from the start of the log' });
      }
      acts.push({ act: 'cancel', label: 'Cancel rebuild', title: 'Abandon this rebuild and drop its tables; generation ' + (r.serving ? r.serving.generation : '') + ' goes on serving' });
    }
    return acts;
  }

  function onProjections(list) {
    projections.list = list || [];
    renderProjections();
  }

  function renderProjections() {
    var body = $('projections'), kinds = projectionKinds(projections.list), seen = {}, rebuilding = {};
    kinds.forEach(function (r) { if (r.kind === 'rebuild') { rebuilding[r.p.name] = true; } });
    $('projections-table').classList.toggle('no-admin', !mayAdminister());
    kinds.forEach(function (r, i) {
      var p = r.p, key = p.name + '\u0000' + p.version + '\u0000' + p.generation;
      var row = projections.rows[key];
      if (!row) {
        var tr = document.createElement('tr');
        for (var k = 0; k < 7; k++) { tr.appendChild(document.createElement('td')); }
        tr.lastChild.className = 'actions';
        row = projections.rows[key] = { tr: tr, html: [], actions: null };
      }
      seen[key] = true;
      row.p = p;
      row.kind = r.kind;
      row.servingGeneration = r.serving ? r.serving.generation : null;
      row.tr.className = 'kind-' + r.kind + (p.status === 'FAILED' ? ' failed' : '');
      row.tr.dataset.name = p.name;
      row.tr.dataset.generation = p.generation;
      row.tr.dataset.kind = r.kind;
      row.tr.dataset.status = p.status;
      var c = projectionCells(r), cells = row.tr.children;
      c.html.forEach(function (html, k) {
        if (row.html[k] !== html) { cells[k].innerHTML = html; row.html[k] = html; }
      });
      cells[2].className = c.stateClass;
      cells[4].className = c.lagClass;
      var acts = mayAdminister() ? projectionActions(r, rebuilding) : [];
      var sig = JSON.stringify(acts) + (admin.busy[p.name] ? ' busy' : '');
      if (row.actions !== sig) {
        row.actions = sig;
        var cell = cells[6];
        cell.textContent = '';
        acts.forEach(function (a) {
          var b = document.createElement('button');
          b.type = 'button';
          b.textContent = a.label;
          b.title = a.title;
          b.dataset.act = a.act;
          b.disabled = !!admin.busy[p.name];
          if (a.act === 'cancel' || a.act === 'skip' || a.label === 'Rebuild again') { b.className = 'danger'; }
          cell.appendChild(b);
        });
      }
      if (body.children[i] !== row.tr) { body.insertBefore(row.tr, body.children[i] || null); }
    });
    Object.keys(projections.rows).forEach(function (key) {
      if (!seen[key]) {
        body.removeChild(projections.rows[key].tr);
        delete projections.rows[key];
      }
    });
  }

  // ---- projection administration
  function forgetAdminRefusal() {
    if (!admin.refused) { return; }
    admin.refused = null;
    say('', '');
    renderProjections();
  }

  function say(text, kind) {
    var el = $('proj-msg');
    el.textContent = text;
    el.className = 'proj-msg' + (kind ? ' ' + kind : '');
    el.hidden = !text;
  }

  // errorText writes a refusal with its code: the rule of a
  // RULE_VIOLATION (REBUILD_IN_PROGRESS, NO_REBUILD_IN_PROGRESS,
  // NOT_FAILED, WRONG_POSITION) first.
  function errorText(err) {
    if (err.rule) { return err.rule + ' (' + (err.code || 'error') + '): ' + err.message; }
    if (err.code) { return err.code + ': ' + err.message; }
    if (err instanceof TypeError) { return 'the gateway could not be reached (' + err.message + ')'; }
    return err.message;
  }

  var MUTATIONS = {
    rebuild: { field: 'rebuildProjection', args: '$name: String!', call: 'name: $name', doing: 'Starting a rebuild of ', what: 'rebuild ' },
    cancel: { field: 'cancelProjectionRebuild', args: '$name: String!', call: 'name: $name', doing: 'Cancelling the rebuild of ', what: 'cancel the rebuild of ' },
    retry: { field: 'retryProjection', args: '$name: String!', call: 'name: $name', doing: 'Retrying ', what: 'retry ' },
    skip: { field: 'skipProjectionEvent', args: '$name: String!, $position: Position!', call: 'name: $name, position: $position', doing: 'Skipping an event of ', what: 'skip the event of ' },
  };

  // confirmation returns the question a destructive action asks first
  // (title, text, the button that goes ahead), or null for one that
  // destroys nothing (rebuild beside the serving tables, retry).
  function confirmation(a) {
    var p = a.p, rest = a.servingGeneration !== null ? 'Generation ' + a.servingGeneration + ' goes on serving queries.' : '';
    if (a.act === 'cancel') {
      return ['Cancel the rebuild of ' + p.name + '?',
        'Generation ' + p.generation + ' (' + p.status + ', ' + progress(p) + '% of the log applied) is abandoned and its tables are dropped: the work done is lost. ' + rest,
        'Cancel rebuild'];
    }
    if (a.act === 'rebuild' && a.kind === 'rebuild') {
      return ['Rebuild ' + p.name + ' again?',
        'The failed rebuild (generation ' + p.generation + ', stopped at position ' + p.position + ') is dropped with its tables, and a new one starts from the start of the log. ' + rest,
        'Rebuild again'];
    }
    if (a.act === 'skip') {
      return ['Skip the event at position ' + a.position + ' for ' + p.name + '?',
        'Every failed generation of ' + p.name + ' that stopped on it moves past it without applying it: its rows stay as if the event' +
        (p.failedEventId ? ' (' + p.failedEventId + ')' : '') + ' had not happened.',
        'Skip the event'];
    }
    return null;
  }

  function ask(q) {
    return new Promise(function (resolve) {
      var d = $('confirm-dialog');
      $('confirm-title').textContent = q[0];
      $('confirm-text').textContent = q[1];
      $('confirm-yes').textContent = q[2];
      d.returnValue = '';
      d.addEventListener('close', function () { resolve(d.returnValue === 'yes'); }, { once: true });
      d.showModal();
    });
  }

  function administer(a) {
    var m = MUTATIONS[a.act], name = a.p.name;
    var vars = { name: name };
    if (a.act === 'skip') { vars.position = a.position; }
    admin.busy[name] = true;
    say(m.doing + name + '…', 'pending');
    renderProjections();
    gql('mutation(' + m.args + ') { ' + m.field + '(' + m.call + ') { ' + PROJECTION_FIELDS + ' } }', vars).then(function (d) {
      var p = d[m.field] || {};
      var text = {
        rebuild: 'Rebuild of ' + name + ' started: generation ' + p.generation + ' is built beside the serving one, which answers queries until it has caught up.',
        cancel: 'Rebuild of ' + name + ' cancelled (generation ' + a.p.generation + ' dropped): generation ' + p.generation + ' goes on serving.',
        retry: name + ' is retrying the event it failed on.',
        skip: name + ' moved past the event at position ' + a.position + '.',
      }[a.act];
      say(text, 'ok');
      // Show the outcome now rather than at the next status (a second).
      return gql('{ projections { ' + PROJECTION_FIELDS + ' } }').then(function (d) { onProjections(d.projections); }, function () { /* the subscription brings it */ });
    }).catch(function (err) {
      var text = 'Could not ' + m.what + name + ': ' + errorText(err);
      if (err.code === 'FORBIDDEN' || err.code === 'UNAUTHORIZED') {
        admin.refused = err;
        text += '. Administering projections needs the ' + (err.requiredRole || 'ADMIN').toLowerCase() +
          ' role, without a tenant: this credential cannot, so the actions are hidden. Use another token to administer.';
      }
      say(text, 'error');
    }).then(function () {
      delete admin.busy[name];
      renderProjections();
    });
  }

  $('projections').addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-act]');
    if (!b || b.disabled || !mayAdminister()) { return; }
    var tr = b.closest('tr'), row = null;
    Object.keys(projections.rows).forEach(function (key) { if (projections.rows[key].tr === tr) { row = projections.rows[key]; } });
    if (!row || admin.busy[row.p.name]) { return; }
    // What the button was drawn for, kept through the question (the row
    // may change meanwhile).
    var a = { act: b.dataset.act, p: row.p, kind: row.kind, servingGeneration: row.servingGeneration, position: row.p.failedPosition };
    var q = confirmation(a);
    if (!q) { administer(a); return; }
    ask(q).then(function (yes) { if (yes) { administer(a); } });
  });

  // ---- who the page acts as
  // The viewer query says who the gateway takes the page's token for: its
  // roles and tenant, and whether it may administer projections. It is
  // asked each time a connection is made (at load, after the token
  // changed, after the gateway came back): until the first answer for a
  // token no button shows, so a reader never sees one. state: 'pending'
  // (not answered yet for this token), 'known' (viewer), 'legacy' (the
  // gateway has no viewer query: it is older) or 'refused' (no credential
  // the gateway accepts).
  var VIEWER_QUERY = '{ viewer { developmentMode credential name roles tenant canAdministerGateway expiresAt } }';
  var who = { state: 'pending', viewer: null, seq: 0, failures: 0 };

  function askViewer() {
    var seq = ++who.seq;
    clearTimeout(who.retry);
    gql(VIEWER_QUERY).then(function (d) {
      if (seq !== who.seq) { return; } // the token changed meanwhile
      who.failures = 0;
      if (d && d.viewer) {
        who.state = 'known';
        who.viewer = d.viewer;
      } else {
        who.state = 'legacy';
      }
      setExpiry(who.state === 'known' ? who.viewer.expiresAt : null);
      onViewer();
    }, function (err) {
      if (seq !== who.seq) { return; }
      if (err.code === 'GRAPHQL_VALIDATION_FAILED') {
        who.state = 'legacy'; // "Cannot query field viewer": an older gateway
      } else if (err.code === 'UNAUTHORIZED' || err.code === 'FORBIDDEN') {
        who.state = 'refused';
      } else if (++who.failures < 3) {
        // The gateway could not answer (restarting, say): ask again, the
        // page as it was meanwhile.
        who.retry = setTimeout(function () { if (seq === who.seq) { askViewer(); } }, 3000);
        return;
      } else if (who.state === 'pending') {
        who.state = 'legacy'; // the buttons, and the gateway's refusal if it refuses
      }
      console.warn('viewer:', err.message);
      onViewer();
    });
  }

  // forgetViewer is for a new token: nothing is known of it yet.
  function forgetViewer() {
    who.seq++;
    clearTimeout(who.retry);
    who.state = 'pending';
    who.viewer = null;
    who.failures = 0;
    onViewer();
  }

  function onViewer() {
    showViewer();
    renderProjections();
  }

  // showViewer writes, at the top, who the page acts as: its highest role
  // and its tenant (and its name, when the credential has one).
  function showViewer() {
    var el = $('viewer');
    if (who.state !== 'known') {
      el.hidden = true;
      el.textContent = el.title = '';
      el.dataset.role = el.dataset.tenant = '';
      return;
    }
    var v = who.viewer, roles = v.roles || [];
    var role = roles.length ? roles[roles.length - 1].toLowerCase() : 'no role';
    var parts = [];
    if (v.developmentMode) {
      parts.push('development mode');
    } else if (v.name) {
      parts.push(v.name);
    }
    parts.push(role);
    if (v.tenant) { parts.push('tenant ' + v.tenant); }
    el.textContent = 'as ' + parts.join(' · ');
    el.title = 'Who the gateway takes this page for: ' +
      (v.developmentMode ? 'development mode (no authentication), every caller an administrator'
        : (v.credential === 'API_KEY' ? 'API key' : 'token') + (v.name ? ' "' + v.name + '"' : '') +
          ', ' + (roles.length ? 'role ' + role : 'no role known to the gateway') + ', ' + (v.tenant ? 'tenant ' + v.tenant : 'no tenant')) +
      (v.canAdministerGateway ? '. It may administer projections.' : '. Administering projections needs an administrator without a tenant.') +
      (expiry.at !== null ? ' The token expires at ' + pageTime(expiry.at) + '.' : '');
    el.dataset.role = roles.length ? role : '';
    el.dataset.tenant = v.tenant || '';
    el.hidden = false;
  }

  // ---- the token's expiry
  // The viewer's expiresAt says when the gateway stops accepting the
  // page's token (a JWT's exp plus the gateway's leeway; null for an API
  // key and in development mode, which do not expire). From WARN_MS
  // before, the top bar says so ("token expires in 4 min — paste a new
  // one"), each minute, then each second in the last minute; the link
  // opens the token box. Once expired, the page stops: the gateway closes
  // the connection then (4403, "credential expired") and would refuse any
  // other made with the token, so none is made (nor one waited for
  // retried) until a new token is given, which clears the notice.
  //
  // The time left is reckoned on the gateway's clock, not the page's (a
  // laptop's clock can be minutes off): the page keeps the differences
  // between the gateway's timestamps and its own clock when they arrive.
  // Each gatewayStats' `at` (every second, to the millisecond) is late by
  // its journey (a replayed one by its age too), so none overstates the
  // difference: the largest of the recent ones is taken (clock.fine).
  // Until the first arrives, the Date header of the gateway's HTTP
  // answers (the viewer's among them) stands in (clock.coarse): cut to
  // the second, it is taken half a second later. Before any answer of the
  // gateway, the page's own clock is used.
  var WARN_MS = 5 * 60 * 1000;
  // EXPIRY_SLACK_MS: a 4403 that comes this close to the known expiry is
  // the expiry's, whatever its reason says.
  var EXPIRY_SLACK_MS = 5000;
  var clock = { fine: [], coarse: [] };
  // expiry: at is the token's expiry on the gateway's clock (ms, or
  // null), expired whether the page has stopped for it.
  var expiry = { at: null, expired: false, timer: null };

  function sampleClock(samples, gatewayMs) {
    if (!isFinite(gatewayMs)) { return; }
    samples.push(gatewayMs - Date.now());
    if (samples.length > 20) { samples.shift(); }
  }
  // clockOffset is the gateway's clock minus the page's, as far as known.
  function clockOffset() {
    if (clock.fine.length) { return Math.max.apply(null, clock.fine); }
    return clock.coarse.length ? Math.max.apply(null, clock.coarse) + 500 : 0;
  }
  function gatewayNow() { return Date.now() + clockOffset(); }
  // pageTime writes an instant of the gateway's clock as the page's
  // clock (the one its user sees) reads it then.
  function pageTime(gatewayMs) { return new Date(gatewayMs - clockOffset()).toLocaleTimeString(); }

  // setExpiry takes the viewer's expiresAt (an RFC 3339 time, or null) for
  // the token in use.
  function setExpiry(expiresAt) {
    var at = expiresAt ? Date.parse(expiresAt) : NaN;
    expiry.at = isFinite(at) ? at : null;
    renderExpiry();
  }
  // clearExpiry is for a new token: nothing is known of it yet.
  function clearExpiry() {
    expiry.at = null;
    expiry.expired = false;
    renderExpiry();
  }

  // renderExpiry writes the notice for the time left, and sets a timer
  // for the moment its text changes (or, more than WARN_MS ahead, at most
  // a minute ahead: the clocks' difference may change meanwhile).
  function renderExpiry() {
    clearTimeout(expiry.timer);
    var text = '', kind = '', next = null;
    if (expiry.expired) {
      text = 'token expired — ';
      kind = 'expired';
    } else if (expiry.at !== null) {
      var left = expiry.at - gatewayNow();
      if (left <= 0) { expire(); return; }
      if (left > WARN_MS) {
        next = Math.min(left - WARN_MS, 60000);
      } else if (left > 60000) {
        var min = Math.ceil(left / 60000);
        text = 'token expires in ' + min + ' min — ';
        next = left - (min - 1) * 60000;
      } else {
        var sec = Math.ceil(left / 1000);
        text = 'token expires in ' + sec + ' s — ';
        next = left - (sec - 1) * 1000;
      }
      kind = text ? 'warn' : '';
    }
    var el = $('expiry');
    if ($('expiry-text').textContent !== text) { $('expiry-text').textContent = text; }
    el.className = 'expiry' + (kind ? ' ' + kind : '');
    el.dataset.state = kind;
    el.title = expiry.at === null ? '' : 'The gateway ' + (expiry.expired ? 'accepted' : 'accepts') + ' this token until ' + pageTime(expiry.at) +
      ' by this page\'s clock (' + clockText(clockOffset()) + ')';
    el.hidden = !text;
    if (next !== null) { expiry.timer = setTimeout(renderExpiry, next + 20); }
  }
  // clockText says how far the gateway's clock is from the page's.
  function clockText(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    if (s === 0) { return 'the gateway\'s reads the same'; }
    var d = s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h';
    return 'the gateway\'s is ' + d + ' ' + (ms > 0 ? 'ahead' : 'behind');
  }
  // A tab in the background may have its timers slowed: catch up on its
  // return.
  document.addEventListener('visibilitychange', function () { if (!document.hidden) { renderExpiry(); } });

  // expired says whether the token in use is known to have expired, or
  // expires within slack ms.
  function expired(slack) {
    return expiry.expired || expiry.at !== null && expiry.at - gatewayNow() <= slack;
  }

  // expire stops the page for an expired token: the connection there is,
  // or the one waited for, is given up, and the token box shows. reason
  // is the gateway's, when it refused the token.
  function expire(reason) {
    expiry.expired = true;
    var ws = state.ws;
    state.ws = null;
    if (ws) { try { ws.close(1000, 'token expired'); } catch (e) { /* already closing */ } }
    clearTimeout(state.retry);
    clearTimeout(state.tilesTimer);
    state.tilesTimer = null;
    setConn('expired');
    forgetViewer(); // the gateway no longer takes the page for anyone
    renderExpiry();
    $('auth-msg').textContent = 'The token expired' + (expiry.at !== null ? ' at ' + pageTime(expiry.at) : '') +
      (reason ? ' (the gateway: ' + reason + ')' : '') +
      '. The gateway no longer accepts it, so the page has stopped. Paste a new token or API key to go on.';
    $('auth').hidden = false;
    $('auth-token').focus();
  }

  $('expiry-new').addEventListener('click', function () {
    if (!expiry.expired) {
      $('auth-msg').textContent = 'Paste a new token or API key: the page connects again with it' +
        (expiry.at !== null ? ' (the one in use expires at ' + pageTime(expiry.at) + ')' : '') + '.';
    }
    $('auth').hidden = false;
    $('auth-token').focus();
  });

  // ---- the tail
  var shown = {}; // position -> event, for the dialog
  function onEvent(e) {
    if (state.lastPosition !== null && e.position <= state.lastPosition) { return; }
    state.lastPosition = e.position;
    shown[e.position] = e;
    var tr = document.createElement('tr');
    tr.tabIndex = 0;
    tr.dataset.position = e.position;
    tr.innerHTML = '<td>' + e.position + '</td><td>' + esc(e.type) + '</td><td>' + esc(e.streamId) + '</td><td>' +
      esc(new Date(e.recordedAt).toLocaleTimeString()) + '</td>';
    var body = $('tail');
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > TAIL) {
      delete shown[body.lastChild.dataset.position];
      body.removeChild(body.lastChild);
    }
    refreshTilesSoon();
  }
  function openEvent(tr) {
    var e = shown[tr.dataset.position];
    if (!e) { return; }
    $('event-title').textContent = e.type + ' at ' + e.position + ' (' + e.streamId + ' v' + e.streamVersion + ')';
    $('event-data').textContent = JSON.stringify(e.data, null, 2);
    $('event-meta').textContent = JSON.stringify(e.metadata, null, 2);
    $('event-dialog').showModal();
  }
  $('tail').addEventListener('click', function (ev) { var tr = ev.target.closest('tr'); if (tr) { openEvent(tr); } });
  $('tail').addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' || ev.key === ' ') { var tr = ev.target.closest('tr'); if (tr) { ev.preventDefault(); openEvent(tr); } }
  });

  // ---- the read-model tiles
  var STATUSES = ['OPEN', 'SUBMITTED', 'CONFIRMED', 'SHIPPED', 'CANCELLED'];
  var tilesQuery = '{ bankTotals { currency accounts totalBalanceDecimal minorUnitDigits } ' +
    STATUSES.map(function (s) { return s + ': orders(filter: {status: "' + s + '"}, first: 1) { totalCount }'; }).join(' ') +
    ' products(maxAvailable: 5, first: 10) { edges { node { sku name available } } } }';
  // minorUnits writes a decimal integer string of minor units with the
  // currency's k decimals (the gateway's minorUnitDigits: 2 for cents, 0
  // for yen, 3 for dinars), exactly at any size (the sum of a currency's
  // balances need not fit a float, nor a Long).
  function minorUnits(s, k) {
    if (!(k > 0)) { return s; }
    var neg = s.charAt(0) === '-', d = neg ? s.slice(1) : s;
    while (d.length < k + 1) d = '0' + d;
    return (neg ? '-' : '') + d.slice(0, -k) + '.' + d.slice(-k);
  }
  // One tiles query at a time: events that come while one is in flight
  // ask for one more after it (a slow read side got a new query every
  // 300 ms, piling up in the browser and at the gateway).
  var tilesBusy = false, tilesAgain = false;
  function refreshTiles() {
    state.tilesTimer = null;
    if (tilesBusy) { tilesAgain = true; return; }
    tilesBusy = true;
    gql(tilesQuery).then(function (d) {
      $('bank-totals').innerHTML = d.bankTotals.length ? d.bankTotals.map(function (t) {
        return '<li><span>' + esc(t.currency) + ' (' + t.accounts + ' accounts)</span><span>' + esc(minorUnits(t.totalBalanceDecimal, t.minorUnitDigits)) + '</span></li>';
      }).join('') : '<li>No accounts yet</li>';
      $('order-counts').innerHTML = STATUSES.map(function (s) {
        return '<li><span>' + s.toLowerCase() + '</span><span>' + d[s].totalCount + '</span></li>';
      }).join('');
      var low = d.products.edges;
      $('low-stock').innerHTML = low.length ? low.map(function (e) {
        return '<li><span>' + esc(e.node.sku) + ' ' + esc(e.node.name) + '</span><span>' + e.node.available + '</span></li>';
      }).join('') : '<li>None</li>';
    }).catch(function (err) { console.warn('tiles:', err.message); }).then(function () {
      tilesBusy = false;
      if (tilesAgain) { tilesAgain = false; refreshTilesSoon(); }
    });
  }
  function refreshTilesSoon() {
    if (tilesBusy) { tilesAgain = true; return; }
    if (!state.tilesTimer) { state.tilesTimer = setTimeout(refreshTiles, 300); }
  }

  // ---- the websocket (graphql-transport-ws)
  // STALE_MS: gatewayStats arrives every second; a connection silent for
  // this long (a laptop's sleep, a proxy that dropped it without closing)
  // is given up and a new one made.
  var STALE_MS = 10000;
  var handlers = {};
  function subscribe(ws, id, query, variables, onData) {
    handlers[id] = onData;
    ws.send(JSON.stringify({ id: id, type: 'subscribe', payload: { query: query, variables: variables } }));
  }

  function startSubscriptions(ws) {
    subscribe(ws, 'stats', 'subscription { gatewayStats { head eventsPerSecond websocketConnections liveSubscriptions at } }', {}, function (d) { onStats(d.gatewayStats); });
    subscribe(ws, 'projections', 'subscription { projectionStatus { ' + PROJECTION_FIELDS + ' } }', {}, function (d) { onProjections(d.projectionStatus); });
    var tail = function (after) {
      subscribe(ws, 'tail', 'subscription($after: Position) { events(after: $after) { position streamId streamVersion type data metadata recordedAt } }',
        { after: after }, function (d) { onEvent(d.events); });
    };
    var startTail = function () {
      if (state.ws !== ws) { return; } // reconnected meanwhile: that connection starts its own
      // Start a little before the head, or resume exactly after the last
      // event shown when that is nearer (a short disconnect): never replay
      // more than the table shows (after a night's sleep, the whole
      // backlog). If the head cannot be read, resume, or on the first
      // connection ask again shortly: starting from 0 would replay the
      // whole log into the page.
      gql('{ events(first: 1) { head } }').then(function (d) {
        if (state.ws !== ws) { return; } // the connection went meanwhile: the next one starts its own
        var after = Math.max(0, d.events.head - TAIL);
        if (state.lastPosition !== null && state.lastPosition >= after) { after = state.lastPosition; }
        state.lastPosition = after;
        tail(after);
      }).catch(function () {
        if (state.ws !== ws) { return; }
        if (state.lastPosition !== null) { tail(state.lastPosition); } else { setTimeout(startTail, 2000); }
      });
    };
    startTail();
    refreshTiles();
  }

  // reconnect makes a new connection after a pause that grows with each
  // failed attempt.
  function reconnect() {
    if (expired(0)) { expire(); return; } // the gateway would refuse it
    state.attempt++;
    setConn(state.attempt > 5 ? 'offline' : 'reconnecting');
    var delay = Math.min(30000, 250 * Math.pow(2, state.attempt)) * (0.75 + Math.random() / 2);
    state.retry = setTimeout(connect, delay);
  }

  // abandon gives ws up (a subscription the server ended, or silence) and
  // reconnects at once, without waiting for its close, which a dead
  // connection may never finish; the new connection resubscribes, and the
  // tail resumes after the last event shown.
  function abandon(ws, why) {
    if (state.ws !== ws) { return; }
    console.warn('connection given up:', why);
    state.ws = null;
    try { ws.close(); } catch (e) { /* already closing */ }
    reconnect();
  }

  function connect() {
    var ws = new WebSocket(wsUrl, 'graphql-transport-ws');
    state.ws = ws;
    var heard = Date.now();
    var watch = setInterval(function () {
      if (state.ws !== ws) { clearInterval(watch); return; }
      if (Date.now() - heard > STALE_MS) { clearInterval(watch); abandon(ws, 'nothing heard for ' + STALE_MS / 1000 + ' s'); }
    }, 1000);
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: 'connection_init', payload: token ? { authorization: 'Bearer ' + token } : {} }));
    };
    ws.onmessage = function (msg) {
      if (state.ws !== ws) { return; }
      heard = Date.now();
      var m = JSON.parse(msg.data);
      if (m.type === 'connection_ack') {
        state.attempt = 0;
        setConn('live');
        askViewer();
        startSubscriptions(ws);
      } else if (m.type === 'next' && handlers[m.id]) {
        if (m.payload.data) { handlers[m.id](m.payload.data); }
      } else if (m.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (m.type === 'error' || m.type === 'complete') {
        // The dashboard's subscriptions never end by themselves: one the
        // server ended (a failed read of the log, say) is made again, on
        // a new connection.
        abandon(ws, 'subscription ' + m.id + ' ended: ' + JSON.stringify(m.payload || m.type));
      }
    };
    ws.onclose = function (ev) {
      clearInterval(watch);
      if (state.ws !== ws) { return; }
      state.ws = null;
      if (ev.code === 4403) {
        // Refused credential (none, expired, unknown): asking again with
        // the same one would be refused again. Ask the user for one.
        askForToken(ev.reason);
        return;
      }
      reconnect();
    };
  }

  // askForToken shows why the gateway refused the connection and a form
  // for a token or API key; the dashboard connects again with what is
  // entered (kept, as a token from the address is).
  function askForToken(reason) {
    // An expired token (the gateway's reason says so, or the page knows
    // its expiry has come) is said to be: the page stops.
    if (/expired/i.test(reason || '') || expired(EXPIRY_SLACK_MS)) {
      expire(reason);
      return;
    }
    setConn('unauthorized');
    forgetViewer(); // the gateway no longer takes the page for anyone
    $('auth-msg').textContent = 'The gateway refused the connection (' + (reason || 'Forbidden') + '). ' +
      (token ? 'Enter another token or API key.' : 'It needs a token or API key.');
    $('auth').hidden = false;
    $('auth-token').focus();
  }

  // restart drops the connection there is (or the one waited for) and
  // connects again at once, with the token there is now.
  function restart() {
    forgetAdminRefusal();
    forgetViewer();
    clearExpiry();
    var ws = state.ws;
    state.ws = null;
    if (ws) { try { ws.close(); } catch (e) { /* already closing */ } }
    clearTimeout(state.retry);
    $('auth').hidden = true;
    state.attempt = 0;
    setConn('reconnecting');
    connect();
  }

  // useToken makes v the token, kept for the next visits, and shows the
  // control that forgets it.
  function useToken(v) {
    token = v;
    localStorage.setItem(KEY, v);
    $('forget-token').hidden = false;
  }
  function note(text) {
    $('token-note').textContent = text;
    $('token-note').hidden = !text;
  }

  $('auth-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('auth-token').value.trim();
    if (!v) { return; }
    useToken(v);
    note('');
    $('auth-token').value = '';
    restart();
  });

  // The question a differing token from the address raises: until it is
  // answered the page does not connect, with either token.
  $('token-use').addEventListener('click', function () {
    if (!offered) { return; }
    useToken(offered);
    offered = null;
    $('token-change').hidden = true;
    note('The token kept in this browser was replaced by the one from the address.');
    restart();
  });
  $('token-keep').addEventListener('click', function () {
    offered = null;
    $('token-change').hidden = true;
    note('The token from the address was discarded; the one kept in this browser is used.');
    if (!state.ws) { restart(); }
  });
  // offer takes a token from the address: kept at once when there is none,
  // asked about when it differs from the one there is.
  function offer(v) {
    offered = null;
    if (!v || v === token) { return false; }
    if (!token) {
      useToken(v);
      return true;
    }
    offered = v;
    note('');
    $('token-change').hidden = false;
    $('token-use').focus();
    return false;
  }
  // A #token= typed into the address of the open page changes only its
  // fragment, without loading it again.
  window.addEventListener('hashchange', function () {
    if (offer(tokenFromAddress())) { restart(); }
  });

  // Forget token: nothing is kept any more, in the browser or the page;
  // the connection is made again without a token (and the gateway, if it
  // asks for one, refuses it and the page asks).
  $('forget-token').addEventListener('click', function () {
    localStorage.removeItem(KEY);
    token = null;
    offered = null;
    $('token-change').hidden = true;
    $('forget-token').hidden = true;
    note('The token was forgotten: this browser keeps none for the dashboard.');
    restart();
  });

  $('forget-token').hidden = !token;
  offer(fromAddress);
  if (offered) {
    setConn('waiting');
  } else {
    setConn('reconnecting');
    connect();
  }
})();
