// A real S3-protocol server (s3rver) for the tests, in a process of its own: s3rver signs its list
// continuation tokens with DES, which Node's OpenSSL 3 offers only with --openssl-legacy-provider, a flag
// the test processes should not carry. Arguments: the data directory and a comma-separated list of buckets.
// Prints {"port": N} once listening; stops when its stdin closes (the test process ended, however it ended).
import S3rver from 's3rver';

const [directory, buckets = ''] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets
    .split(',')
    .filter(Boolean)
    .map((name) => ({ name })),
});
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.stdin.on('end', () => server.close().finally(() => process.exit(0)));
process.stdin.resume();
