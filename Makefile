# kevent-cuse: build and install everything a system needs.
#
#   make                       release build: daemon, kevent-ctl, libkevent
#   make install               install under PREFIX (default /usr/local); builds
#                              only what is missing (run `make` first)
#   make uninstall             remove exactly what install put there
#   make install DESTDIR=/tmp/stage PREFIX=/usr    (staged, for packaging)
#
# Directories (override any of them on the command line):
#   PREFIX=/usr/local  EXEC_PREFIX=$(PREFIX)  BINDIR=$(EXEC_PREFIX)/bin
#   SBINDIR=$(EXEC_PREFIX)/sbin  LIBDIR=$(EXEC_PREFIX)/lib
#   INCLUDEDIR=$(PREFIX)/include  DATADIR=$(PREFIX)/share
#   MANDIR=$(DATADIR)/man  DOCDIR=$(DATADIR)/doc/kevent-cuse
#   PKGCONFIGDIR=$(LIBDIR)/pkgconfig
#   SYSTEMDUNITDIR=$(PREFIX)/lib/systemd/system
#   UDEVRULESDIR=$(PREFIX)/lib/udev/rules.d
#   MODULESLOADDIR=$(PREFIX)/lib/modules-load.d
#   SYSUSERSDIR=$(PREFIX)/lib/sysusers.d
# systemd, udev, modules-load and sysusers all read <prefix>/lib/... for
# both /usr and /usr/local. Set LIBDIR=$(PREFIX)/lib/x86_64-linux-gnu for a
# Debian multiarch layout.
#
# After installing: `systemd-sysusers; udevadm control --reload;
# systemctl daemon-reload; systemctl enable --now kevent-cuse` (see README).

PREFIX         ?= /usr/local
EXEC_PREFIX    ?= $(PREFIX)
BINDIR         ?= $(EXEC_PREFIX)/bin
SBINDIR        ?= $(EXEC_PREFIX)/sbin
LIBDIR         ?= $(EXEC_PREFIX)/lib
INCLUDEDIR     ?= $(PREFIX)/include
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/kevent-cuse
PKGCONFIGDIR   ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
UDEVRULESDIR   ?= $(PREFIX)/lib/udev/rules.d
MODULESLOADDIR ?= $(PREFIX)/lib/modules-load.d
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
DESTDIR        ?=

CARGO   ?= cargo
INSTALL ?= install
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# Where the builds land.
CARGO_OUT := target/release
LIB_OUT   := $(CURDIR)/target/libkevent

SOVERSION      := 1
SOVERSION_FULL := 1.0.0

MAN1 := man/man1/kevent-ctl.1
MAN3 := man/man3/kevent_ctl.3 man/man3/aio_recv.3 man/man3/aio_send.3 man/man3/aio_sendfile.3
MAN4 := man/man4/kevent.4
MAN8 := man/man8/kevent-cuse.8
DOCS := README.md docs/ABI.md docs/WIRE.md

.PHONY: all build rust lib generated install uninstall clean FORCE

all: build

build: rust lib generated

generated: $(LIB_OUT)/kevent.pc $(LIB_OUT)/kevent-cuse.service

rust:
	$(CARGO) build --release --locked -p kevent-cuse -p kevent-ctl

# `make install` builds the binaries only when they are missing, so that
# `make && sudo make install` works where root's PATH has no cargo.
$(CARGO_OUT)/kevent-cuse $(CARGO_OUT)/kevent-ctl:
	$(CARGO) build --release --locked -p kevent-cuse -p kevent-ctl

lib:
	$(MAKE) -C client-c OUT=$(LIB_OUT) static shared

# Generated files depend on the directory variables: always regenerate.
$(LIB_OUT)/kevent.pc: dist/kevent.pc.in FORCE
	mkdir -p $(LIB_OUT)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< >$@

$(LIB_OUT)/kevent-cuse.service: dist/kevent-cuse.service.in FORCE
	mkdir -p $(LIB_OUT)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $< >$@

install: $(CARGO_OUT)/kevent-cuse $(CARGO_OUT)/kevent-ctl lib generated
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR)/linux $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man4 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(MODULESLOADDIR) \
		$(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -m 755 $(CARGO_OUT)/kevent-cuse $(DESTDIR)$(SBINDIR)/kevent-cuse
	$(INSTALL) -m 755 $(CARGO_OUT)/kevent-ctl $(DESTDIR)$(BINDIR)/kevent-ctl
	$(INSTALL) -m 644 client-c/include/kevent.h $(DESTDIR)$(INCLUDEDIR)/kevent.h
	$(INSTALL) -m 644 client-c/include/kevent.h $(DESTDIR)$(INCLUDEDIR)/linux/kevent.h
	$(INSTALL) -m 644 $(LIB_OUT)/libkevent.a $(DESTDIR)$(LIBDIR)/libkevent.a
	$(INSTALL) -m 755 $(LIB_OUT)/libkevent.so.$(SOVERSION_FULL) $(DESTDIR)$(LIBDIR)/libkevent.so.$(SOVERSION_FULL)
	ln -sf libkevent.so.$(SOVERSION_FULL) $(DESTDIR)$(LIBDIR)/libkevent.so.$(SOVERSION)
	ln -sf libkevent.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkevent.so
	$(INSTALL) -m 644 $(LIB_OUT)/kevent.pc $(DESTDIR)$(PKGCONFIGDIR)/kevent.pc
	$(INSTALL) -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL) -m 644 $(MAN4) $(DESTDIR)$(MANDIR)/man4/
	$(INSTALL) -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 $(LIB_OUT)/kevent-cuse.service $(DESTDIR)$(SYSTEMDUNITDIR)/kevent-cuse.service
	$(INSTALL) -m 644 dist/60-kevent.rules $(DESTDIR)$(UDEVRULESDIR)/60-kevent.rules
	$(INSTALL) -m 644 dist/modules-load.conf $(DESTDIR)$(MODULESLOADDIR)/kevent-cuse.conf
	$(INSTALL) -m 644 dist/sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/kevent-cuse.conf
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null 2>&1; then ldconfig; fi

# Removes the files install creates, then the directories it created that are
# left empty (never a directory that holds anything else).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/kevent-cuse $(DESTDIR)$(BINDIR)/kevent-ctl \
		$(DESTDIR)$(INCLUDEDIR)/kevent.h $(DESTDIR)$(INCLUDEDIR)/linux/kevent.h \
		$(DESTDIR)$(LIBDIR)/libkevent.a $(DESTDIR)$(LIBDIR)/libkevent.so \
		$(DESTDIR)$(LIBDIR)/libkevent.so.$(SOVERSION) \
		$(DESTDIR)$(LIBDIR)/libkevent.so.$(SOVERSION_FULL) \
		$(DESTDIR)$(PKGCONFIGDIR)/kevent.pc \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man4/,$(notdir $(MAN4))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS))) \
		$(DESTDIR)$(SYSTEMDUNITDIR)/kevent-cuse.service \
		$(DESTDIR)$(UDEVRULESDIR)/60-kevent.rules \
		$(DESTDIR)$(MODULESLOADDIR)/kevent-cuse.conf \
		$(DESTDIR)$(SYSUSERSDIR)/kevent-cuse.conf
	rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(INCLUDEDIR)/linux 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null 2>&1; then ldconfig; fi

clean:
	$(CARGO) clean --release
	rm -rf $(LIB_OUT)
