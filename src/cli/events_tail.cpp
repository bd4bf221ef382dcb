// A transient subscription on the process's bus: RabbitMQ when bus.url is set (an exclusive
// queue of its own), else the embedded broker under --data-dir (a queue removed on exit).
#include "cli/events_tail.h"

#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <iostream>

#include "platform/auth/tokens.h"
#include "platform/bus/bus.h"
#include "platform/runtime/app.h"
#include "platform/runtime/module.h"
#include "platform/telemetry/log.h"

namespace aether::cli {

namespace asio = boost::asio;
namespace bus = platform::bus;

int tail_events(platform::runtime::Runtime& runtime, const std::string& pattern) {
    int exit_code = 0;
    // stdout carries the events alone, so that it can be piped to jq and the like.
    platform::telemetry::Logger::instance().set_sink(STDERR_FILENO);
    try {
        runtime.run([&](platform::runtime::ModuleContext& context) -> asio::awaitable<void> {
            auto* events = co_await context.bus();
            auto subscription = context.subscription("tail." + std::to_string(::getpid()) + "." +
                                                     platform::auth::random_token(4));
            subscription.transient = true;
            subscription.bindings.push_back(pattern);
            subscription.handler = [](const bus::Delivery& delivery) -> asio::awaitable<void> {
                std::cout << bus::to_json(delivery.event) << std::endl;
                co_return;
            };
            events->subscribe(std::move(subscription));
            asio::signal_set signals(co_await asio::this_coro::executor, SIGINT, SIGTERM);
            co_await events->start();
            if (!events->healthy()) {
                std::cerr << "aether: the bus is not reachable yet; waiting for it" << std::endl;
            }
            // From here on the queue is bound: what is published now is printed.
            platform::telemetry::log_info("events tail ready", {{"pattern", pattern}});
            co_await signals.async_wait(asio::use_awaitable);
            co_await events->stop();
        });
    } catch (const std::exception& failure) {
        std::cerr << "aether: events tail: " << failure.what() << "\n";
        exit_code = 1;
    }
    return exit_code;
}

}  // namespace aether::cli
