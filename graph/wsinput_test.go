package graph_test

import (
	"strings"
	"testing"

	"cqrsgate/graph"
)

// An operation id that is not text (invalid UTF-8, half a surrogate pair)
// is refused as the payload's text is: encoding/json read both as U+FFFD,
// so that two different ids were taken for one (the second subscription
// closed the socket with 4409) and the id echoed back was not the
// client's. An id that holds U+FFFD itself is an id like any other.
func TestTransportWSIdsMustBeText(t *testing.T) {
	sub := func(rawID string) string {
		return `{"id":"` + rawID + `","type":"subscribe","payload":{"query":"subscription { events { position } }"}}`
	}
	for name, ids := range map[string][2]string{
		"lone surrogates": {`\ud800`, `\udc00`},
		"invalid UTF-8":   {"\xff", "\xfe"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newWSServer(t, &graph.Websocket{})
			c := s.dial(t, graph.ProtocolTransportWS)
			c.init()
			c.send(sub(ids[0]))
			c.send(sub(ids[1]))
			if code, reason := c.closeFrame(); code != graph.CloseInvalidMessage || !strings.Contains(reason, "not valid text") {
				t.Fatalf("close %d %q, want %d saying the id is not valid text", code, reason, graph.CloseInvalidMessage)
			}
		})
	}

	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	for _, id := range []string{`\ufffd`, "\ufffd-2"} {
		c.send(`{"id":"` + id + `","type":"subscribe","payload":{"query":"{ __typename }"}}`)
		if m := c.expect("next"); !strings.HasPrefix(m.ID, "\ufffd") {
			t.Fatalf("next for %q, want the id sent (%s)", m.ID, id)
		}
		c.expect("complete")
	}
}

// A legacy (graphql-ws) connection_init whose payload cannot be read is
// answered with connection_error, which the reference client reports, and
// the socket closes with 4400. It was answered with an error message
// without an id, which that client ignores, and the connection stayed
// open, never acknowledged, serving nothing.
func TestLegacyInitWithABadPayloadIsAConnectionError(t *testing.T) {
	for name, payload := range map[string]string{
		"a string":       `"token"`,
		"an array":       `[1]`,
		"not valid text": `{"authorization":"\ud800"}`,
		"a number":       `42`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newWSServer(t, &graph.Websocket{})
			c := s.dial(t, graph.ProtocolLegacyWS)
			c.send(`{"type":"connection_init","payload":` + payload + `}`)
			if m := c.read(); m.Type != "connection_error" || !strings.Contains(string(m.Payload), "connection_init payload") {
				t.Fatalf("got %s %s, want connection_error", m.Type, m.Payload)
			}
			if code := c.closeCode(); code != graph.CloseInvalidMessage {
				t.Fatalf("close %d, want %d", code, graph.CloseInvalidMessage)
			}
		})
	}
}

// A legacy start before connection_init is refused with an error that
// names the operation: the reference client drops errors without an id,
// and the operation would wait for ever.
func TestLegacyStartBeforeInitNamesTheOperation(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolLegacyWS)
	c.send(`{"id":"early","type":"start","payload":{"query":"{ __typename }"}}`)
	if m := c.read(); m.Type != "error" || m.ID != "early" {
		t.Fatalf("got %s for %q (%s), want an error for early", m.Type, m.ID, m.Payload)
	}
	c.init()
	c.send(`{"id":"early","type":"start","payload":{"query":"{ __typename }"}}`)
	if m := c.expect("data"); m.ID != "early" {
		t.Fatalf("data for %q, want early", m.ID)
	}
}

// The envelope's members are named exactly: encoding/json matched "TYPE"
// to type, the last one winning, so that {"type":"subscribe","TYPE":"ping"}
// was a ping, where the protocol's JavaScript clients and servers tell the
// two apart. A member named so is refused with 4400, naming it.
func TestTransportWSMemberNamesAreCaseSensitive(t *testing.T) {
	for _, msg := range []string{
		`{"id":"1","type":"subscribe","TYPE":"ping","payload":{"query":"{ __typename }"}}`,
		`{"Id":"1","type":"subscribe","payload":{"query":"{ __typename }"}}`,
		`{"id":"1","type":"subscribe","Payload":{"query":"{ __typename }"}}`,
	} {
		s := newWSServer(t, &graph.Websocket{})
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		c.send(msg)
		if code, reason := c.closeFrame(); code != graph.CloseInvalidMessage || !strings.Contains(reason, "case-sensitive") {
			t.Errorf("%s: close %d %q, want %d naming the member", msg, code, reason, graph.CloseInvalidMessage)
		}
	}
	// Members the protocol does not name are let be, as before.
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(`{"id":"1","type":"subscribe","payload":{"query":"{ __typename }"},"extra":true}`)
	c.expect("next")
	c.expect("complete")
}
