// The live dashboard. One websocket (graphql-transport-ws) carries three
// subscriptions: gatewayStats (the rate chart and gateway tile),
// projectionStatus (the projections table) and events (the tail). The
// read-model tiles are queried over HTTP when events arrive (at most twice a
// second). After a disconnect it reconnects with backoff and resumes the
// tail after the last position it showed, so no event is missing.
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

  function gql(query, variables) {
    var headers = { 'Content-Type': 'application/json' };
    if (token) { headers.Authorization = 'Bearer ' + token; }
    return fetch(httpUrl, { method: 'POST', headers: headers, body: JSON.stringify({ query: query, variables: variables || {} }) })
      .then(function (r) { return r.json(); })
      .then(function (r) {
        if (r.errors) { throw new Error(r.errors[0].message); }
        return r.data;
      });
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

  function onProjections(list) {
    $('projections').innerHTML = list.map(function (p) {
      var behind = p.status !== 'FAILED' && p.lagSeconds > 5;
      var warn = p.status === 'FAILED' ? ' ⚠ failed' : behind ? ' ⚠ behind' : '';
      return '<tr><td>' + esc(p.name) + (p.serving ? '' : ' (rebuilding)') + '</td><td>' + p.version + '</td>' +
        '<td class="state-' + esc(p.status) + (behind ? ' behind' : '') + '">' + esc(p.status) + warn + '</td>' +
        '<td>' + p.position + '</td><td' + (behind ? ' class="behind"' : '') + '>' + p.lag + ' (' + p.lagSeconds.toFixed(1) + ' s)</td>' +
        '<td>' + esc(p.lastError || '') + '</td></tr>';
    }).join('');
  }

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
    subscribe(ws, 'projections', 'subscription { projectionStatus { name version status serving position lag lagSeconds lastError } }', {}, function (d) { onProjections(d.projectionStatus); });
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
    setConn('unauthorized');
    $('auth-msg').textContent = 'The gateway refused the connection (' + (reason || 'Forbidden') + '). ' +
      (token ? 'Enter another token or API key.' : 'It needs a token or API key.');
    $('auth').hidden = false;
    $('auth-token').focus();
  }

  // restart drops the connection there is (or the one waited for) and
  // connects again at once, with the token there is now.
  function restart() {
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
