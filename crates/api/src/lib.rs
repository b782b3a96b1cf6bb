//! REST types, the error body and a typed client for the otaas control plane API (`/api/v1`).
