/*
 * test_socket_ipv6 - the checks of test_socket over TCP on IPv6 (::1).
 * Skipped (exit 77) when the host has no usable IPv6 loopback.
 */

#define TEST_SOCKET_IPV6 1
#include "test_socket.c"
