// A small std::expected stand-in for C++20: expected failures travel as values, not exceptions.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace aether::platform {

template <class E>
struct Unexpected {
    E error;
};

template <class E>
Unexpected<std::decay_t<E>> unexpected(E&& error) {
    return {std::forward<E>(error)};
}

template <class T, class E>
class [[nodiscard]] Expected {
  public:
    Expected(T value) : storage_(std::in_place_index<0>, std::move(value)) {}
    template <class G>
    requires std::is_constructible_v<E, G> Expected(Unexpected<G> failure)
        : storage_(std::in_place_index<1>, std::move(failure.error)) {}

    bool has_value() const { return storage_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & {
        assert(has_value());
        return std::get<0>(storage_);
    }
    const T& value() const& {
        assert(has_value());
        return std::get<0>(storage_);
    }
    T&& value() && {
        assert(has_value());
        return std::get<0>(std::move(storage_));
    }
    const E& error() const& {
        assert(!has_value());
        return std::get<1>(storage_);
    }
    E&& error() && {
        assert(!has_value());
        return std::get<1>(std::move(storage_));
    }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    template <class U>
    T value_or(U&& fallback) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

  private:
    std::variant<T, E> storage_;
};

template <class E>
class [[nodiscard]] Expected<void, E> {
  public:
    Expected() = default;
    template <class G>
    requires std::is_constructible_v<E, G> Expected(Unexpected<G> failure)
        : failed_(true), error_(std::move(failure.error)) {}

    bool has_value() const { return !failed_; }
    explicit operator bool() const { return has_value(); }
    const E& error() const& {
        assert(failed_);
        return error_;
    }
    E&& error() && {
        assert(failed_);
        return std::move(error_);
    }

  private:
    bool failed_ = false;
    E error_{};
};

}  // namespace aether::platform
