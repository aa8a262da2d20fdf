// Reads a JSON array of SQL statements on stdin; writes a JSON array of error lists (one per statement, [] = parsed).
// Used by tests/store/test_questdb_sql.py: every QuestDB statement btlab sends must parse with QuestDB's own parser.
import { parseToAst } from "@questdb/sql-parser";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const statements = JSON.parse(input);
const results = statements.map((sql) => {
  try {
    const r = parseToAst(sql);
    const errors = r.errors.map((e) => e.message);
    if (!errors.length && r.ast.length !== 1) errors.push(`expected one statement, parsed ${r.ast.length}`);
    return errors;
  } catch (e) {
    return [String(e && e.message ? e.message : e)];
  }
});
process.stdout.write(JSON.stringify(results));
