// Wires the tasks module: its config block, migrations (its tables and its outbox) and routes.
//
// Decisions the contract leaves open:
// - Every holder of tasks:read sees every task (as the original monolith did); changes need
//   tasks:write, and a non-admin may change, complete or delete only a task they created or are
//   assigned to (assignee = their user id or email). Anyone with tasks:write may comment.
// - `tags=a,b` lists tasks carrying all of the tags; `order` defaults to desc for created_at and
//   updated_at (newest first) and to asc for the other sort fields; tasks without a due date sort
//   last; `due_before` is strict.
// - The ETag is the strong "<version>" of the task's fields, incremented by every change that
//   alters one (comments are appended, never edited, and do not change it). If-Match with
//   another tag gets 412 and changes nothing; "*" or no If-Match proceeds.
// - POST /{id}/complete on a completed task is 409. Completing (also by PUT status) sets
//   completed_at/by and progress 100; reopening clears the completion. A PUT that completes
//   emits task.updated and task.completed; POST /complete emits task.completed.
// - GET /{id} shows the newest 1000 comments and history entries, oldest first.
#include "services/tasks/module.h"

#include <array>
#include <boost/json.hpp>

#include "platform/auth/tokens.h"
#include "platform/config/config.h"
#include "platform/config/schema.h"
#include "platform/http/bearer.h"
#include "platform/http/pagination.h"
#include "platform/http/router.h"
#include "platform/json/arena.h"
#include "platform/json/body.h"
#include "platform/json/envelope.h"
#include "platform/telemetry/clock.h"
#include "platform/telemetry/metrics.h"
#include "services/tasks/store.h"
#include "services/tasks/task.h"

namespace aether::services::tasks {

namespace json = platform::json;
namespace config = platform::config;
namespace runtime = platform::runtime;
namespace telemetry = platform::telemetry;
using json::ClientError;

namespace {

constexpr std::string_view kBase = "/api/v1/tasks";
constexpr std::int64_t kShownEntries = 1000;

std::string now_text() {
    return telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
}

auth::Principal authenticate(http::Request& request, const auth::JwtCodec& jwt,
                             std::string_view permission) {
    auto principal = http::authenticate_access_token(request, jwt);
    http::require_permission(principal, permission);
    return principal;
}

std::string task_id_of(const http::Request& request) {
    auto id = request.param("id");
    // Not an id this service could have made: no query needed to know it does not exist.
    if (!plausible_task_id(id)) throw ClientError::not_found("no task with this id");
    return std::string(id);
}

boost::json::object object_body(const http::Request& request, bool may_be_empty = false) {
    if (may_be_empty && request.body.find_first_not_of(" \t\r\n") == std::string::npos) {
        return {};
    }
    auto parsed = json::parse_object(request.body);
    if (!parsed) {
        throw ClientError::validation(
            [&] { return std::vector<FieldError>{std::move(parsed).error()}; }());
    }
    return std::move(*parsed);
}

http::Response json_response(int status, const boost::json::object& body) {
    return http::Response::json(status, boost::json::serialize(body));
}

// Response bodies are built and serialized at once, in an arena on a plain function's stack.
using BodyArena = platform::json::StackArena<8192>;

http::Response task_response(int status, const Task& task, const boost::json::object& body) {
    auto response = json_response(status, body);
    response.set_header("ETag", etag(task.version));
    return response;
}

http::Response task_response(int status, const Task& task) {
    BodyArena arena;
    return task_response(status, task, to_json(task, arena.storage()));
}

http::Response list_response(const std::vector<Task>& tasks, boost::json::object pagination) {
    BodyArena arena;
    boost::json::array items(arena.storage());
    items.reserve(tasks.size());
    for (const auto& task : tasks) items.push_back(to_json(task, arena.storage()));
    boost::json::object body(arena.storage());
    body.emplace("tasks", std::move(items));
    body.emplace("pagination", std::move(pagination));
    return json_response(200, body);
}

http::Response task_detail_response(const Task& task, const std::vector<Comment>& comments,
                                    const std::vector<HistoryEntry>& history) {
    BodyArena arena;
    auto body = to_json(task, arena.storage());
    boost::json::array comment_items(arena.storage());
    comment_items.reserve(comments.size());
    for (const auto& comment : comments) comment_items.push_back(to_json(comment, arena.storage()));
    boost::json::array history_items(arena.storage());
    history_items.reserve(history.size());
    for (const auto& entry : history) history_items.push_back(to_json(entry, arena.storage()));
    body.emplace("comments", std::move(comment_items));
    body.emplace("history", std::move(history_items));
    return task_response(200, task, body);
}

void check_may_modify(const auth::Principal& principal, const Task& task) {
    if (!may_modify(principal, task)) {
        throw ClientError::forbidden(
            "only the task's creator, its assignee or an admin may change it");
    }
}

void check_if_match(const std::string& if_match, const Task& task) {
    if (!if_match_allows(if_match, task.version)) {
        throw ClientError::precondition_failed("If-Match does not match the task's current ETag " +
                                               etag(task.version));
    }
}

bus::Event task_event(std::string type, boost::json::object data, const http::Request& request) {
    return bus::make_event("tasks", std::move(type), std::move(data), request.context.traceparent);
}

bus::Event created_event(const Task& task, const http::Request& request) {
    boost::json::object data;
    data.reserve(5);
    data.emplace("task_id", task.id);
    data.emplace("title", task.title);
    data.emplace("priority", task.priority);
    data.emplace("created_by", task.created_by);
    data.emplace("timestamp", task.created_at);
    return task_event("task.created", std::move(data), request);
}

bus::Event updated_event(const Task& task, const std::vector<FieldChange>& changes,
                         const std::string& user_id, const http::Request& request) {
    boost::json::object changed;
    for (const auto& change : changes) {
        boost::json::object pair;
        pair["from"] = change.from;
        pair["to"] = change.to;
        changed[change.field] = std::move(pair);
    }
    boost::json::object data;
    data["task_id"] = task.id;
    data["changes"] = std::move(changed);
    data["updated_by"] = user_id;
    data["timestamp"] = task.updated_at;
    return task_event("task.updated", std::move(data), request);
}

bus::Event completed_event(const Task& task, const http::Request& request) {
    boost::json::object data;
    data["task_id"] = task.id;
    data["completed_by"] = task.completed_by.value_or(std::string());
    data["completion_time"] = task.completed_at.value_or(std::string());
    data["completion_hours"] = hours_json(task.completion_hours.value_or(0.0));
    data["timestamp"] = task.updated_at;
    return task_event("task.completed", std::move(data), request);
}

bus::Event deleted_event(const std::string& task_id, const std::string& user_id,
                         const std::string& now, const http::Request& request) {
    boost::json::object data;
    data["task_id"] = task_id;
    data["deleted_by"] = user_id;
    data["timestamp"] = now;
    return task_event("task.deleted", std::move(data), request);
}

bus::Event commented_event(const Comment& comment, const http::Request& request) {
    boost::json::object data;
    data["task_id"] = comment.task_id;
    data["comment_id"] = comment.id;
    data["user_id"] = comment.user_id;
    data["timestamp"] = comment.created_at;
    return task_event("task.commented", std::move(data), request);
}

HistoryEntry created_entry(const Task& task) {
    HistoryEntry entry;
    entry.task_id = task.id;
    entry.action = "created";
    entry.user_id = task.created_by;
    entry.timestamp = task.created_at;
    return entry;
}

class TasksModuleImpl final : public runtime::Module {
  public:
    std::string_view name() const override { return "tasks"; }
    std::string_view base_path() const override { return kBase; }

    void declare_config(config::Schema& schema) const override {
        schema.add({"services.tasks.database", config::Kind::String, "",
                    "postgresql:// URL or sqlite:PATH (default sqlite:<data-dir>/tasks.db)",
                    config::database_url()});
    }

    asio::awaitable<void> migrate(runtime::ModuleContext& context) override {
        database_ = co_await context.database("tasks");
        co_await migrate_tasks(*database_);
    }

    asio::awaitable<void> start(runtime::ModuleContext& context) override;

  private:
    void add_routes(http::Router& router);
    // Wakes the outbox relay after a commit that appended, so the event goes out now rather
    // than at the relay's next poll.
    void outbox_appended() const {
        if (outbox_appended_) outbox_appended_();
    }

    // A new task with its history and event, made from the request before anything is stored;
    // on the heap, so create_task's coroutine frame stays small enough for Asio to recycle.
    struct Creation {
        Task task;
        std::vector<HistoryEntry> history;
        std::vector<bus::Event> events;
    };
    std::unique_ptr<Creation> new_creation(http::Request& request) const;
    http::Response created_response(const Task& task) const;

    asio::awaitable<http::Response> create_task(http::Request& request);
    asio::awaitable<http::Response> list_tasks(http::Request& request);
    asio::awaitable<http::Response> get_task(http::Request& request);
    asio::awaitable<http::Response> update_task(http::Request& request);
    asio::awaitable<http::Response> delete_task(http::Request& request);
    asio::awaitable<http::Response> complete_task(http::Request& request);
    asio::awaitable<http::Response> add_comment(http::Request& request);
    asio::awaitable<http::Response> stats(http::Request& request);

    std::shared_ptr<platform::sql::Database> database_;
    std::unique_ptr<TasksStore> store_;
    std::function<void()> outbox_appended_;
    const auth::JwtCodec* jwt_ = nullptr;
    // tasks_created_total by priority rank - 1, resolved once.
    std::array<telemetry::Counter*, std::size(kPriorities)> created_{};
};

asio::awaitable<void> TasksModuleImpl::start(runtime::ModuleContext& context) {
    if (!database_) database_ = co_await context.database("tasks");
    store_ = std::make_unique<TasksStore>(database_);
    outbox_appended_ = co_await context.publish_outbox(database_);
    jwt_ = &context.jwt();
    auto& created = telemetry::default_registry().counter(
        "tasks_created_total", "Tasks created, by priority.", {"priority"});
    for (std::size_t i = 0; i < created_.size(); ++i) created_[i] = &created.with({kPriorities[i]});
    add_routes(context.router());
}

void TasksModuleImpl::add_routes(http::Router& router) {
    auto bind = [this](asio::awaitable<http::Response> (TasksModuleImpl::*member)(http::Request&)) {
        return [this, member](http::Request& request) { return (this->*member)(request); };
    };
    std::string base(kBase);
    using http::Method;
    router.add(Method::Post, base, bind(&TasksModuleImpl::create_task));
    router.add(Method::Get, base, bind(&TasksModuleImpl::list_tasks));
    // A static segment wins over {id}, so /stats is never taken for a task id.
    router.add(Method::Get, base + "/stats", bind(&TasksModuleImpl::stats));
    router.add(Method::Get, base + "/{id}", bind(&TasksModuleImpl::get_task));
    router.add(Method::Put, base + "/{id}", bind(&TasksModuleImpl::update_task));
    router.add(Method::Delete, base + "/{id}", bind(&TasksModuleImpl::delete_task));
    router.add(Method::Post, base + "/{id}/complete", bind(&TasksModuleImpl::complete_task));
    router.add(Method::Post, base + "/{id}/comments", bind(&TasksModuleImpl::add_comment));
}

std::unique_ptr<TasksModuleImpl::Creation> TasksModuleImpl::new_creation(
    http::Request& request) const {
    auto principal = authenticate(request, *jwt_, "tasks:write");
    auto body = object_body(request);
    auto input = read_task_input(body, InputMode::Create);
    if (!input) throw ClientError::validation(std::move(input).error());
    auto creation = std::make_unique<Creation>();
    creation->task =
        new_task(*input, platform::auth::new_id("task_"), principal.user_id, now_text());
    creation->history.push_back(created_entry(creation->task));
    creation->events.push_back(created_event(creation->task, request));
    return creation;
}

http::Response TasksModuleImpl::created_response(const Task& task) const {
    created_[static_cast<std::size_t>(priority_rank(task.priority) - 1)]->inc();
    auto response = task_response(201, task);
    response.set_header("Location", std::string(kBase) + "/" + task.id);
    return response;
}

asio::awaitable<http::Response> TasksModuleImpl::create_task(http::Request& request) {
    auto creation = new_creation(request);
    co_await store_->create(creation->task, creation->history, creation->events);
    outbox_appended();
    co_return created_response(creation->task);
}

asio::awaitable<http::Response> TasksModuleImpl::list_tasks(http::Request& request) {
    authenticate(request, *jwt_, "tasks:read");
    auto query = read_list_query(request);
    if (!query) throw ClientError::validation(std::move(query).error());
    auto page = co_await store_->list(*query);
    co_return list_response(page.items, http::pagination(query->page, page.total));
}

asio::awaitable<http::Response> TasksModuleImpl::get_task(http::Request& request) {
    authenticate(request, *jwt_, "tasks:read");
    auto id = task_id_of(request);
    auto task = co_await store_->find(id);
    if (!task) throw ClientError::not_found("no task with this id");
    auto comments = co_await store_->comments(id, kShownEntries);
    auto history = co_await store_->history(id, kShownEntries);
    co_return task_detail_response(*task, comments, history);
}

asio::awaitable<http::Response> TasksModuleImpl::update_task(http::Request& request) {
    auto principal = authenticate(request, *jwt_, "tasks:write");
    auto id = task_id_of(request);
    auto body = object_body(request);
    auto input = read_task_input(body, InputMode::Update);
    if (!input) throw ClientError::validation(std::move(input).error());
    std::string if_match(request.header("If-Match"));
    auto now = now_text();
    bool appended = false;
    TaskMutator mutate = [&](const Task& current, Task& task) {
        check_may_modify(principal, current);
        check_if_match(if_match, current);
        apply_update(*input, task, principal.user_id, now);
        auto changes = diff(current, task);
        TaskWrite write;
        if (changes.empty()) return write;
        write.changed = true;
        task.updated_at = now;
        write.history = history_for(task.id, changes, principal.user_id, now);
        write.events.push_back(updated_event(task, changes, principal.user_id, request));
        if (task.status == "completed" && current.status != "completed") {
            write.events.push_back(completed_event(task, request));
        }
        appended = true;
        return write;
    };
    auto task = co_await store_->modify(id, mutate);
    if (!task) throw ClientError::not_found("no task with this id");
    if (appended) outbox_appended();
    co_return task_response(200, *task);
}

asio::awaitable<http::Response> TasksModuleImpl::delete_task(http::Request& request) {
    auto principal = authenticate(request, *jwt_, "tasks:write");
    auto id = task_id_of(request);
    std::string if_match(request.header("If-Match"));
    auto now = now_text();
    DeleteCheck check = [&](const Task& current) {
        check_may_modify(principal, current);
        check_if_match(if_match, current);
        return std::vector<bus::Event>(1,
                                       deleted_event(current.id, principal.user_id, now, request));
    };
    if (!co_await store_->remove(id, check)) throw ClientError::not_found("no task with this id");
    outbox_appended();
    boost::json::object body;
    body["success"] = true;
    body["message"] = "Task deleted";
    body["id"] = id;
    co_return json_response(200, body);
}

asio::awaitable<http::Response> TasksModuleImpl::complete_task(http::Request& request) {
    auto principal = authenticate(request, *jwt_, "tasks:write");
    auto id = task_id_of(request);
    auto body = object_body(request, true);
    auto hours = read_completion(body);
    if (!hours) throw ClientError::validation(std::move(hours).error());
    std::string if_match(request.header("If-Match"));
    auto now = now_text();
    TaskMutator mutate = [&](const Task& current, Task& task) {
        check_may_modify(principal, current);
        check_if_match(if_match, current);
        if (current.status == "completed")
            throw ClientError::conflict("the task is already completed");
        complete(task, *hours, principal.user_id, now);
        task.updated_at = now;
        TaskWrite write;
        write.changed = true;
        write.history = history_for(task.id, diff(current, task), principal.user_id, now);
        write.events.push_back(completed_event(task, request));
        return write;
    };
    auto task = co_await store_->modify(id, mutate);
    if (!task) throw ClientError::not_found("no task with this id");
    outbox_appended();
    boost::json::object out;
    out["id"] = task->id;
    out["status"] = task->status;
    out["completed_at"] = task->completed_at.value_or(std::string());
    out["completed_by"] = task->completed_by.value_or(std::string());
    out["actual_hours"] = hours_json(task->actual_hours);
    co_return task_response(200, *task, out);
}

asio::awaitable<http::Response> TasksModuleImpl::add_comment(http::Request& request) {
    auto principal = authenticate(request, *jwt_, "tasks:write");
    auto id = task_id_of(request);
    auto body = object_body(request);
    auto text = read_comment(body);
    if (!text) throw ClientError::validation(std::move(text).error());
    Comment comment;
    comment.id = platform::auth::new_id("cmt_");
    comment.task_id = id;
    comment.user_id = principal.user_id;
    comment.text = std::move(*text);
    comment.created_at = now_text();
    auto event = commented_event(comment, request);
    if (!co_await store_->add_comment(comment, event)) {
        throw ClientError::not_found("no task with this id");
    }
    outbox_appended();
    co_return json_response(201, to_json(comment));
}

asio::awaitable<http::Response> TasksModuleImpl::stats(http::Request& request) {
    authenticate(request, *jwt_, "tasks:read");
    auto query = read_stats_query(request);
    if (!query) throw ClientError::validation(std::move(query).error());
    auto groups = co_await store_->stats(*query, now_text());
    co_return json_response(200, stats_json(groups));
}

}  // namespace

std::unique_ptr<runtime::Module> make_module() {
    return std::make_unique<TasksModuleImpl>();
}

}  // namespace aether::services::tasks
