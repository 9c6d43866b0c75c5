/** The baseline server's SQL: Strata's hot-path statements, pointed at the plain bench_baseline.documents table. */
export const BASELINE_SQL = {
  get: `SELECT id, collection, version, deleted, body, created_at, updated_at
          FROM bench_baseline.documents WHERE tenant_id = $1 AND collection = $2 AND id = $3 AND NOT deleted`,
  insert: `INSERT INTO bench_baseline.documents (tenant_id, collection, id, version, body, size_bytes)
           VALUES ($1, $2, $3, 1, $4::jsonb, $5)
           RETURNING id, collection, version, deleted, body, created_at, updated_at`,
  query: `SELECT d.id, d.collection, d.version, d.deleted, d.body, d.created_at, d.updated_at, d.id AS s0
            FROM bench_baseline.documents d
           WHERE d.tenant_id = $4::uuid AND d.collection = $1 AND NOT d.deleted AND ((d.body #> $2::text[]) = $3::jsonb)
           ORDER BY d.id ASC
           LIMIT $5`,
};
