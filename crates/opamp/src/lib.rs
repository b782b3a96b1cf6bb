//! OpAMP wire types generated from `proto/opamp`, WebSocket framing and message helpers.
