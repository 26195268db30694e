"""Google adapter: service-account delegation, Calendar and Gmail push, ID-token checks."""
