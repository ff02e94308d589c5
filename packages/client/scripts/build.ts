/**
 * Builds the publishable package into dist/: ESM JavaScript (tsup) and one self-contained
 * index.d.ts. The declarations carry the server's router types (every procedure's input and
 * output) without @smartspace/api itself, so a project outside this repo needs only
 * @trpc/client and @trpc/server.
 *
 * Run by `pnpm build` and before `pnpm pack`. The workspace keeps importing src/ directly.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Plugin, rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';
import { build } from 'tsup';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const entry = join(root, 'src/index.ts');

/** Bare imports the bundled declarations may keep: the package's runtime dependencies. */
const EXTERNAL = /^@trpc\/(client|server)(\/|$)/;

/**
 * The router's context type is the server's request context (database, mailer, storage
 * clients). Clients never see it, and keeping it would drag drizzle, postgres and the rest
 * into the declarations, so its declaration is replaced by an opaque object type.
 */
function opaqueContext(declarations: string): string {
  const file = ts.createSourceFile('context.d.ts', declarations, ts.ScriptTarget.Latest, true);
  const context = file.statements.find(
    (s) =>
      (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) && s.name.text === 'Context',
  );
  if (!context) throw new BuildError('the api no longer declares Context in context.ts');
  return (
    declarations.slice(0, context.getStart(file)) +
    '/** Server-side request context; opaque to clients. */\nexport type Context = object;' +
    declarations.slice(context.getEnd())
  );
}

class BuildError extends Error {}

function containsTypeQuery(node: ts.Node): boolean {
  return ts.isTypeQueryNode(node) || (ts.forEachChild(node, containsTypeQuery) ?? false);
}

/** Global types an expanded alias may name: they need no import wherever it lands. */
const GLOBAL_TYPES = new Set(['Date', 'Record', 'Array', 'ReadonlyArray', 'Uint8Array']);

/** Whether a type printed outside its module still means the same thing: only globals named. */
function selfContained(node: ts.Node): boolean {
  if (ts.isImportTypeNode(node) || ts.isTypeQueryNode(node)) return false;
  if (ts.isTypeReferenceNode(node)) {
    if (!ts.isIdentifier(node.typeName) || !GLOBAL_TYPES.has(node.typeName.text)) return false;
  }
  return !ts.forEachChild(node, (child) => !selfContained(child) || undefined);
}

/**
 * Types the api derives from values (`(typeof projectRole.enumValues)[number]`,
 * `typeof table.$inferSelect`) would keep the Drizzle table declarations they read from:
 * such aliases are written out as the types they resolve to instead, when those name nothing
 * but globals.
 */
function expandDerivedAliases(
  checker: ts.TypeChecker,
): ts.TransformerFactory<ts.SourceFile | ts.Bundle> {
  return (context) => {
    const visit = (node: ts.Node): ts.Node => {
      if (!ts.isTypeAliasDeclaration(node) || !containsTypeQuery(node.type)) return node;
      const original = ts.getOriginalNode(node);
      if (!ts.isTypeAliasDeclaration(original)) return node;
      const expanded = checker.typeToTypeNode(
        checker.getTypeAtLocation(original.name),
        undefined,
        ts.NodeBuilderFlags.NoTruncation | ts.NodeBuilderFlags.InTypeAlias,
      );
      // Anything naming other declarations (the router itself) keeps its original form.
      if (!expanded || !selfContained(expanded)) return node;
      return context.factory.updateTypeAliasDeclaration(
        node,
        node.modifiers,
        node.name,
        node.typeParameters,
        expanded,
      );
    };
    return (file) => (ts.isSourceFile(file) ? ts.visitEachChild(file, visit, context) : file);
  };
}

/**
 * Emits declarations for the client and everything it imports (the api's sources too) into
 * outDir, as <package>/src/....d.ts.
 */
async function emitDeclarations(outDir: string): Promise<void> {
  const configPath = join(root, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  // The api is a root file too: TypeScript emits nothing for files it reached through
  // node_modules.
  const program = ts.createProgram([entry, join(root, '../api/src/index.ts')], {
    ...parsed.options,
    noEmit: false,
    declaration: true,
    emitDeclarationOnly: true,
    declarationMap: false,
    sourceMap: false,
    outDir,
    rootDir: resolve(root, '..'),
  });
  const result = program.emit(undefined, undefined, undefined, true, {
    afterDeclarations: [expandDerivedAliases(program.getTypeChecker())],
  });
  // The api's own type errors are its typecheck's to report; here the client's sources and
  // the declaration emit itself must be clean.
  const clientFiles = program.getSourceFiles().filter((f) => f.fileName.startsWith(`${root}/`));
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...clientFiles.flatMap((f) => [
      ...program.getSyntacticDiagnostics(f),
      ...program.getSemanticDiagnostics(f),
    ]),
    ...result.diagnostics,
  ];
  if (diagnostics.length > 0) {
    const host: ts.FormatDiagnosticsHost = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => root,
      getNewLine: () => '\n',
    };
    throw new BuildError(ts.formatDiagnostics(diagnostics, host));
  }
  const contextFile = join(outDir, 'api/src/context.d.ts');
  await writeFile(contextFile, opaqueContext(await readFile(contextFile, 'utf8')));
}

/** Points @smartspace/api at its emitted declarations instead of its sources. */
function apiDeclarations(outDir: string): Plugin {
  return {
    name: 'api-declarations',
    resolveId(source) {
      return source === '@smartspace/api' ? join(outDir, 'api/src/index.d.ts') : null;
    },
  };
}

async function bundleDeclarations(outDir: string): Promise<void> {
  const bundle = await rollup({
    input: join(outDir, 'client/src/index.d.ts'),
    plugins: [apiDeclarations(outDir), dts()],
    // Every other package stays an import; what survives tree-shaking is checked below.
    external: (id) => !id.startsWith('.') && !id.startsWith('/') && id !== '@smartspace/api',
    onwarn(warning) {
      // The api's declarations import much the client's types never use; it is dropped.
      if (warning.code === 'UNUSED_EXTERNAL_IMPORT' || warning.code === 'CIRCULAR_DEPENDENCY')
        return;
      throw new BuildError(`declaration bundling: ${warning.message}`);
    },
  });
  const { output } = await bundle.generate({ format: 'es' });
  await bundle.close();
  const [chunk] = output;
  if (chunk?.type !== 'chunk') throw new BuildError('declaration bundling: no output');
  // Imports the api's declarations make but the client's types never reach are tree-shaken;
  // whatever is left must be a runtime dependency, or consumers would need the server's.
  const foreign = chunk.imports.filter((id) => !EXTERNAL.test(id));
  if (foreign.length > 0) {
    throw new BuildError(
      `the client's declarations would need ${foreign.join(', ')}; ` +
        'only @trpc/client and @trpc/server may be',
    );
  }
  await writeFile(join(dist, 'index.d.ts'), chunk.code);
}

async function main(): Promise<void> {
  await rm(dist, { recursive: true, force: true });
  await build({
    entry: { index: entry },
    outDir: dist,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    dts: false,
    sourcemap: true,
    clean: false,
    silent: true,
    // Only runtime packages stay imports; @smartspace/api is imported for types alone.
    external: [EXTERNAL],
  });
  const declarations = await mkdtemp(join(tmpdir(), 'smartspace-client-dts-'));
  try {
    await emitDeclarations(declarations);
    await bundleDeclarations(declarations);
  } finally {
    await rm(declarations, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`build failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
