-- Listing services stays fast at any size and beside other tenants: every
-- filter of GET /v1/services (and the console's services page) is a keyset
-- walk `... AND id < $cursor ORDER BY id DESC LIMIT n`, so each gets an
-- index whose order is that walk. Before, the walk went down the primary
-- key and stepped over every newer service of every other tenant (25 ms a
-- page beside 100 000 of them; benches/paging.rs).
DROP INDEX services_tenant;   -- (tenant_id, created_at): nothing orders by it
DROP INDEX services_server;   -- (server_id): the new one leads with it too
CREATE INDEX services_tenant_id ON services (tenant_id, id);
CREATE INDEX services_tenant_state_id ON services (tenant_id, state, id);
CREATE INDEX services_tenant_plan_id ON services (tenant_id, plan, id);
CREATE INDEX services_server_id ON services (server_id, id);
