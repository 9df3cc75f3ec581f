/*
 * web: the browser assets compiled into receiptd (see web/meson.build).
 * Each array is followed by a NUL byte that the length does not count.
 */
#ifndef RECEIPT_WEB_WEB_H
#define RECEIPT_WEB_WEB_H

#include <stddef.h>

extern const unsigned char web_agent_js[];
extern const size_t web_agent_js_len;

/* The admin dashboard (daemon/admin.c). */
extern const unsigned char web_dashboard_html[];
extern const size_t web_dashboard_html_len;
extern const unsigned char web_dashboard_css[];
extern const size_t web_dashboard_css_len;
extern const unsigned char web_dashboard_js[];
extern const size_t web_dashboard_js_len;

#endif
