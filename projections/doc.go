// Package projections will hold the projection runner (checkpoints,
// batching, rebuilds), the read-model tables and the change feed. It is
// empty today: see the README's roadmap; nothing in the gateway uses it yet.
package projections
