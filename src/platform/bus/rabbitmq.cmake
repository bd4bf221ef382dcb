# The RabbitMQ driver of the bus (rabbitmq-c), included by bus/CMakeLists.txt.
pkg_check_modules(RABBITMQ REQUIRED IMPORTED_TARGET librabbitmq)

add_library(aether_platform_bus_rabbitmq STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rabbitmq_bus.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rabbitmq_connection.cpp)
target_link_libraries(aether_platform_bus_rabbitmq
  PUBLIC aether_platform_bus
  PRIVATE PkgConfig::RABBITMQ aether_platform_telemetry)

if(NOT AETHER_BUILD_TESTS)
  return()
endif()

# One process for the whole suite: it starts its own broker (scripts/rabbitmq-test-server, a free
# port, a temp dir) at the first test that needs one, stops and restarts it for the outage test,
# and removes it at exit. A broker boots in 6-20 s here, so the cases share it (unique queue names)
# instead of one CTest test per case each starting one. By hand: ./platform_bus_rabbitmq_test
add_executable(platform_bus_rabbitmq_test
  ${CMAKE_CURRENT_LIST_DIR}/rabbitmq_bus_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rabbitmq_connection_test.cpp)
target_link_libraries(platform_bus_rabbitmq_test PRIVATE aether_platform_bus_rabbitmq
  GTest::gtest GTest::gtest_main)
target_compile_definitions(platform_bus_rabbitmq_test PRIVATE
  AETHER_RABBITMQ_TEST_SERVER="${PROJECT_SOURCE_DIR}/scripts/rabbitmq-test-server")
add_test(NAME platform_bus_rabbitmq_test COMMAND platform_bus_rabbitmq_test)
set_tests_properties(platform_bus_rabbitmq_test PROPERTIES LABELS unit TIMEOUT 240)
