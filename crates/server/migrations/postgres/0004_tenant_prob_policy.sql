-- Per-tenant overrides of the probability policy (logit_bias / logprobs), as a JSON object
-- whose absent fields fall back to the gateway's settings. NULL: the gateway's policy as is.
-- (Twin of migrations/sqlite/0004_tenant_prob_policy.sql.)
ALTER TABLE tenants ADD COLUMN prob_policy TEXT;
