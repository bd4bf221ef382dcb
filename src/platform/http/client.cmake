# The outbound HTTP client; included from http/CMakeLists.txt, so paths are relative to this file.
add_library(aether_platform_http_client STATIC ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/peer_watch.cpp)
target_link_libraries(aether_platform_http_client
  PUBLIC aether_platform_asio aether_platform_http OpenSSL::SSL OpenSSL::Crypto)

aether_unit_test(platform_http_client_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/client_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/client_streaming_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/client_upload_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/peer_watch_test.cpp
  LIBS aether_platform_http_client)
