// Reads a JSON array of SQL statements on stdin; writes, per statement, what QuestDB's own parser
// (@questdb/sql-parser, installed in tests/store/questdb_sql by `make test`) makes of it:
// {errors, functions, tables, columns, aliases, unknown_functions}. Functions are checked against the grammar's
// function list that the parser package exports. Used by tests/dashboards/test_panel_sql.py.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const pkg = resolve(process.argv[2], "node_modules/@questdb/sql-parser/dist/index.js");
const { parseToAst, functions } = await import(pathToFileURL(pkg).href);
const known = new Set(functions.map((f) => f.toLowerCase()));

function walk(node, out) {
  if (Array.isArray(node)) { for (const n of node) walk(n, out); return; }
  if (!node || typeof node !== "object") return;
  switch (node.type) {
    case "function": out.functions.add(node.name.toLowerCase()); break;
    case "column": out.columns.add(node.name.parts.join(".")); break;
    case "cte": out.aliases.add(node.name); break;
    case "selectItem": if (node.alias) out.aliases.add(node.alias); break;
    case "latestOn": for (const q of node.partitionBy || []) out.columns.add(q.parts.join(".")); break;
    case "tableRef":
      if (node.alias) out.aliases.add(node.alias);
      if (node.table && node.table.type === "qualifiedName") out.tables.add(node.table.parts.join("."));
      break;
  }
  for (const [k, v] of Object.entries(node)) if (k !== "type") walk(v, out);
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((sql) => {
  const out = { errors: [], functions: new Set(), tables: new Set(), columns: new Set(), aliases: new Set() };
  try {
    const r = parseToAst(sql);
    out.errors = r.errors.map((e) => e.message);
    if (!out.errors.length && r.ast.length !== 1) out.errors.push(`expected one statement, parsed ${r.ast.length}`);
    walk(r.ast, out);
  } catch (e) {
    out.errors.push(String(e && e.message ? e.message : e));
  }
  const fns = [...out.functions].sort();
  return { errors: out.errors, functions: fns, unknown_functions: fns.filter((f) => !known.has(f)),
           tables: [...out.tables].sort(), columns: [...out.columns].sort(), aliases: [...out.aliases].sort() };
});
process.stdout.write(JSON.stringify(results));
