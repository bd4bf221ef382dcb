// Publish throughput with confirms through amqplib (npm), the yardstick of bench/bus/compare.sh:
// COUNT persistent JSON messages of BODY_BYTES to the aether.events topic exchange on a
// ConfirmChannel, either in windows of 100 (publish 100, waitForConfirms, next 100: what the
// outbox relay does with our driver) or all in flight and one waitForConfirms at the end.
//
//   node amqp-publish-bench.mjs URL COUNT [window|all] [BODY_BYTES] [ROUTING_KEY]
//   node amqp-publish-bench.mjs URL sink QUEUE ROUTING_KEY
// Prints one line `amqplib mode=… messages=… body_bytes=… seconds=… msgs_per_s=…`. The sink form
// declares the durable QUEUE bound to ROUTING_KEY and empties it, so that the publishes of a run
// are routed and stored (confirmed after the write) and runs do not pile messages up.
import amqp from 'amqplib';

const kExchange = 'aether.events';
const kWindow = 100;

const [url, second, ...rest] = process.argv.slice(2);
if (!url || !second) {
  console.error('usage: node amqp-publish-bench.mjs URL COUNT [window|all] [BODY_BYTES] [ROUTING_KEY]\n' +
                '       node amqp-publish-bench.mjs URL sink QUEUE ROUTING_KEY');
  process.exit(2);
}

const connection = await amqp.connect(url);
try {
  if (second === 'sink') {
    const [queue, routingKey] = rest;
    const channel = await connection.createChannel();
    await channel.assertExchange(kExchange, 'topic', { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, kExchange, routingKey);
    const { messageCount } = await channel.purgeQueue(queue);
    console.log(`sink ${queue} bound to ${routingKey}; purged ${messageCount}`);
  } else {
    const count = Number(second);
    const [mode = 'window', bytesArg = '400', routingKey = 'bench.task.created'] = rest;
    if (!(count > 0) || !['window', 'all'].includes(mode)) {
      console.error('COUNT must be positive and the mode window or all');
      process.exit(2);
    }
    const channel = await connection.createConfirmChannel();
    await channel.assertExchange(kExchange, 'topic', { durable: true });
    const started = process.hrtime.bigint();
    if (mode === 'window') {
      for (let sent = 0; sent < count;) {
        const n = Math.min(kWindow, count - sent);
        for (let i = 0; i < n; i += 1) {
          if (!publish(channel, sent + i, Number(bytesArg), routingKey)) await drained(channel);
        }
        await channel.waitForConfirms();
        sent += n;
      }
    } else {
      for (let i = 0; i < count; i += 1) {
        if (!publish(channel, i, Number(bytesArg), routingKey)) await drained(channel);
      }
      await channel.waitForConfirms();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`amqplib mode=${mode} messages=${count} body_bytes=${Number(bytesArg)} ` +
                `seconds=${seconds.toFixed(3)} msgs_per_s=${Math.round(count / seconds)}`);
  }
} finally {
  await connection.close();
}

// One message as a producer would build it: a fresh id and time in a CloudEvents-like envelope,
// padded to `bytes` so that it matches the size of the bus's task.created envelope.
function body(n, bytes) {
  const envelope = {
    specversion: '1.0',
    id: `evt_${String(n).padStart(26, '0')}`,
    source: '/aether/tasks',
    type: 'bench.task.created',
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { task_id: `task_${String(n).padStart(26, '0')}`, title: `Benchmark task ${n}`, pad: '' },
  };
  const short = Buffer.byteLength(JSON.stringify(envelope));
  envelope.data.pad = 'x'.repeat(Math.max(0, bytes - short));
  return Buffer.from(JSON.stringify(envelope));
}

// False once the socket's buffer is full: the caller then waits for 'drain', as amqplib asks.
function publish(channel, n, bytes, routingKey) {
  return channel.publish(kExchange, routingKey, body(n, bytes), {
    persistent: true,
    contentType: 'application/json',
    messageId: `evt_${n}`,
    type: routingKey,
  });
}

function drained(channel) {
  return new Promise((resolve) => channel.once('drain', resolve));
}
