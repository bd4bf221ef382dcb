// A consumer written with amqplib (npm), not by us: binds an exclusive queue to aether.events and
// prints each delivery as one JSON line {routing_key, properties, body}. Used by the integration
// tests to check what other teams' consumers will see.
//
//   node amqp-consume.mjs URL PATTERN [COUNT] [TIMEOUT_MS] [QUEUE]
// Prints "ready" once bound; exits 0 after COUNT messages, 1 on timeout or error. With QUEUE the
// queue is durable and named, so it keeps collecting while this consumer is gone (or the broker
// restarts) and a later consumer of the same QUEUE gets what arrived meanwhile.
import amqp from 'amqplib';

const [url, pattern, countArg = '1', timeoutArg = '30000', queueName = ''] = process.argv.slice(2);
if (!url || !pattern) {
  console.error('usage: node amqp-consume.mjs URL PATTERN [COUNT] [TIMEOUT_MS]');
  process.exit(2);
}
const wanted = Number(countArg);

const connection = await amqp.connect(url);
const channel = await connection.createChannel();
await channel.checkExchange('aether.events');
const { queue } = queueName
  ? await channel.assertQueue(queueName, { durable: true })
  : await channel.assertQueue('', { exclusive: true, autoDelete: true });
await channel.bindQueue(queue, 'aether.events', pattern);
console.log('ready');

let received = 0;
const timer = setTimeout(() => {
  console.error(`timed out after ${received} of ${wanted} messages`);
  process.exit(1);
}, Number(timeoutArg));

await channel.consume(queue, (message) => {
  const body = message.content.toString('utf8');
  console.log(JSON.stringify({
    routing_key: message.fields.routingKey,
    properties: {
      content_type: message.properties.contentType,
      delivery_mode: message.properties.deliveryMode,
      message_id: message.properties.messageId,
      type: message.properties.type,
    },
    body: JSON.parse(body),
  }));
  channel.ack(message);
  received += 1;
  if (received >= wanted) {
    clearTimeout(timer);
    connection.close().then(() => process.exit(0));
  }
});
