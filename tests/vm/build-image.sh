#!/bin/bash
# build-image.sh - build a tiny, bootable QCOW2 (v3) VM image that meets the
# Djinn image contract, for the test suite and for users who want a quick
# image to try djinn with:
#
#   * root has an EMPTY password (root:x: in /etc/passwd, root:: in /etc/shadow);
#   * an SSH server listens on port 22 and accepts that login;
#   * the virtio NIC is configured by DHCP (QEMU user networking);
#   * /root and /root/.ssh exist; SFTP (openssh's sftp-server) and scp work.
#
# Usage:  tests/vm/build-image.sh [OUTDIR]          (OUTDIR defaults to ".")
# Output: OUTDIR/djinn-tiny.qcow2          SSH server dropbear (the default)
#         OUTDIR/djinn-tiny-openssh.qcow2  with SSHD=openssh (AcceptEnv *)
#         OUTDIR/djinn-tiny-openssh-imagespage.qcow2  with
#                  SSHD=openssh-imagespage: OpenSSH configured as Djinn's
#                  Images page tells users to (PubkeyAuthentication no,
#                  PermitUserEnvironment yes, Subsystem sftp
#                  /usr/libexec/openssh/sftp-server: a Fedora path that
#                  Debian lacks, so SFTP does not start; UsePAM no, as the
#                  tiny image has no PAM). Issue 11, section 3.
#         OUTDIR/djinn-tiny-git.qcow2      with GIT=1: also Debian's git
#                                          (clone over git://; no https)
#         (SSHD=openssh GIT=1: djinn-tiny-openssh-git.qcow2)
#         OUTDIR/djinn-tiny-nosshd.qcow2   with SSHD=none: boots, but no SSH
#                                          server ever starts (the image-
#                                          contract check's "no banner")
#         OUTDIR/djinn-tiny-rootpw.qcow2   with ROOT_PASSWORD=1: root has the
#                                          password "djinn" (breaks the
#                                          contract; fix: passwd -d root)
#         plus OUTDIR/<image>.stamp, which makes a re-run print "cached" and
#         do nothing while this script and the kernel package are unchanged.
# Env:    SSHD=dropbear|openssh|openssh-imagespage|none  GIT=0|1
#         ROOT_PASSWORD=0|1
#         ROOT_MB=256 (ext4 root, 64..65536)
#
# Everything is built as an ordinary user from Debian packages, without loop
# mounts, nbd, guestfish or root: the kernel comes from `apt-get download` of
# the package linux-image-amd64 depends on, an initramfs (static busybox +
# the virtio/ext4 modules) is packed with cpio, the FAT boot partition is made
# with mkfs.vfat -C + mcopy + `syslinux --install` on a plain file, the ext4
# root with `mke2fs -d DIR`, the partition table with sfdisk on a plain file,
# and qemu-img converts the raw disk to qcow2 v3 (compat=1.1).
#
# Build packages: busybox-static dropbear-bin qemu-utils e2fsprogs syslinux
# syslinux-common mtools dosfstools fdisk cpio. Run as root, the script
# apt-installs the missing ones; otherwise it names them and stops.
#
# Boot it (no KVM needed; on machines without KVM use -accel tcg):
#   qemu-system-x86_64 -accel tcg -m 256 -display none \
#     -netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n0 \
#     -drive file=djinn-tiny.qcow2,if=virtio,snapshot=on
#   ssh -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1
# (tests/vm/boot.sh does this and picks a free port.)
set -euo pipefail
export LC_ALL=C

prog=build-image.sh
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

[ $# -le 1 ] || die "usage: $prog [OUTDIR]  (env SSHD=dropbear|openssh|openssh-imagespage|none, GIT=0|1, ROOT_PASSWORD=0|1, ROOT_MB=N)"
OUT=${1:-.}
SSHD=${SSHD:-dropbear}
GIT=${GIT:-0}
ROOT_PASSWORD=${ROOT_PASSWORD:-0}
ROOT_MB=${ROOT_MB:-256}
BOOT_MB=32
case $SSHD in
dropbear) NAME=djinn-tiny ;;
openssh) NAME=djinn-tiny-openssh ;;
openssh-imagespage) NAME=djinn-tiny-openssh-imagespage ;;
none) NAME=djinn-tiny-nosshd ;;
*) die "SSHD=$SSHD: unknown SSH server; allowed: dropbear (default), openssh, openssh-imagespage, none" ;;
esac
case $ROOT_PASSWORD in
0) ;;
1) NAME=$NAME-rootpw ;;
*) die "ROOT_PASSWORD=$ROOT_PASSWORD: allowed: 0 (default: root has no password), 1 (root's password is djinn)" ;;
esac
SSHD_CONF=standard
if [ "$SSHD" = openssh-imagespage ]; then
	SSHD=openssh
	SSHD_CONF=imagespage
fi
case $GIT in
0) NAME=$NAME.qcow2 ;;
1) NAME=$NAME-git.qcow2 ;;
*) die "GIT=$GIT: allowed: 0 (default), 1 (add git to the image)" ;;
esac
case $ROOT_MB in
'' | *[!0-9]*) die "ROOT_MB=$ROOT_MB: not a number; allowed: 64..65536 (MiB)" ;;
esac
((ROOT_MB >= 64 && ROOT_MB <= 65536)) || die "ROOT_MB=$ROOT_MB: out of range; allowed: 64..65536 (MiB)"
IMAGE=$OUT/$NAME
STAMP=$IMAGE.stamp
T0=$(date +%s%N)

is_root() { [ "$(id -u)" = 0 ]; }

# The kernel package that linux-image-amd64 currently depends on, e.g.
# linux-image-6.1.0-56-amd64. Needs apt lists; as root, refresh them once.
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
command -v apt-cache >/dev/null || die "apt-cache not found: this script needs a Debian-based host (apt)"
KPKG=$(kernel_pkg)
APT_UPDATED=0
if [ -z "$KPKG" ] && is_root; then
	apt-get update -qq >/dev/null 2>&1 || true
	APT_UPDATED=1
	KPKG=$(kernel_pkg)
fi
[ -n "$KPKG" ] || die "cannot find the package linux-image-amd64 depends on (apt-cache depends linux-image-amd64 lists none); run 'apt-get update' as root first"

# ------------------------------------------------------------------ cache --
SELF_HASH=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)
STAMP_TEXT=$(printf 'script %s\nkernel %s\nsshd %s %s\ngit %s\nroot_password %s\nroot_mb %s\n' "$SELF_HASH" "$KPKG" "$SSHD" "$SSHD_CONF" "$GIT" "$ROOT_PASSWORD" "$ROOT_MB")
if [ -f "$IMAGE" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
	echo "cached $IMAGE"
	exit 0
fi

# -------------------------------------------------------- build packages --
missing=()
for p in busybox-static dropbear-bin qemu-utils e2fsprogs syslinux syslinux-common mtools dosfstools fdisk cpio; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
	is_root || die "missing build packages: ${missing[*]}; install them with: apt-get install --no-install-recommends ${missing[*]} (or run this script as root)"
	((APT_UPDATED)) || apt-get update -qq >/dev/null 2>&1 || true
	APT_UPDATED=1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
for t in busybox dropbearkey mkfs.vfat mcopy syslinux mke2fs sfdisk cpio qemu-img dpkg-deb; do
	command -v "$t" >/dev/null || die "$t not found on PATH although its package is installed"
done
BUSYBOX=$(command -v busybox)
file_out=$(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true)
case $file_out in
*"not a dynamic executable"* | *"statically linked"*) ;;
*) die "$BUSYBOX is dynamically linked; the image needs the static one from busybox-static" ;;
esac
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$MBR" ] || die "$MBR not found (package syslinux-common)"

mkdir -p "$OUT" || die "cannot create $OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/djinn-image.XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------- download --
mkdir -p "$W/deb" "$W/x"
debs=("$KPKG" openssh-sftp-server openssh-client)
[ "$SSHD" = openssh ] && debs+=(openssh-server libwrap0)
[ "$GIT" = 1 ] && debs+=(git)
download() { (cd "$W/deb" && apt-get download -q "${debs[@]}") >"$W/download.log" 2>&1; }
if ! download; then
	if is_root && ((!APT_UPDATED)); then
		apt-get update -qq >/dev/null 2>&1 || true
		download || {
			cat "$W/download.log" >&2
			die "apt-get download ${debs[*]} failed"
		}
	else
		cat "$W/download.log" >&2
		die "apt-get download ${debs[*]} failed (stale apt lists? run 'apt-get update' as root)"
	fi
fi

# Only the kernel and the module directories the initramfs needs: all of
# virtio, virtio_blk, virtio_net and ext4 are modules in Debian's kernel.
for d in "$W"/deb/*.deb; do
	case ${d##*/} in
	linux-image-*)
		dpkg-deb --fsys-tarfile "$d" | tar -x -C "$W/x" --wildcards \
			'./boot/vmlinuz-*' \
			'./lib/modules/*/modules.order' './lib/modules/*/modules.builtin' \
			'./lib/modules/*/kernel/drivers/virtio/*' \
			'./lib/modules/*/kernel/drivers/block/virtio_blk.ko' \
			'./lib/modules/*/kernel/drivers/net/virtio_net.ko' \
			'./lib/modules/*/kernel/drivers/char/hw_random/virtio-rng.ko' \
			'./lib/modules/*/kernel/drivers/net/net_failover.ko' \
			'./lib/modules/*/kernel/net/core/failover.ko' \
			'./lib/modules/*/kernel/fs/ext4/*' './lib/modules/*/kernel/fs/jbd2/*' \
			'./lib/modules/*/kernel/fs/mbcache.ko' './lib/modules/*/kernel/lib/crc16.ko' \
			'./lib/modules/*/kernel/crypto/crc32c_generic.ko' ||
			die "extracting the kernel and modules from ${d##*/} failed"
		;;
	*) dpkg-deb -x "$d" "$W/x" || die "extracting ${d##*/} failed" ;;
	esac
done
kdirs=("$W"/x/lib/modules/*)
if [ ${#kdirs[@]} != 1 ] || [ ! -d "${kdirs[0]}" ]; then
	die "$KPKG: expected one lib/modules/VERSION directory"
fi
KVER=${kdirs[0]##*/}
MODDIR=$W/x/lib/modules/$KVER
VMLINUZ=$W/x/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "$KPKG has no boot/vmlinuz-$KVER"
"$BUSYBOX" depmod -b "$W/x" "$KVER" || die "busybox depmod failed"

# Modules in load order: every module after its dependencies.
declare -A deps_of=() seen=()
while IFS= read -r line; do
	deps_of[${line%%:*}]=${line#*:}
done <"$MODDIR/modules.dep"
load_order=()
add_module() { # path relative to MODDIR
	local m=$1 d
	[[ -n ${seen[$m]-} ]] && return 0
	seen[$m]=1
	[[ -v deps_of[$m] ]] || die "kernel module $m is needed but was not extracted (add it to the tar patterns)"
	for d in ${deps_of[$m]}; do add_module "$d"; done
	load_order+=("$m")
}
for want in virtio_pci virtio_blk virtio_net virtio-rng crc32c_generic ext4; do
	path=
	for k in "${!deps_of[@]}"; do
		[[ $k == */"$want".ko ]] && path=$k
	done
	[ -n "$path" ] || die "kernel module $want.ko not found in $KPKG"
	add_module "$path"
done

# -------------------------------------------------------------- initramfs --
I=$W/initramfs
mkdir -p "$I/bin" "$I/dev" "$I/proc" "$I/sys" "$I/newroot" "$I/lib/modules"
cp "$BUSYBOX" "$I/bin/busybox"
ln -s busybox "$I/bin/sh"
n=0
for m in "${load_order[@]}"; do
	n=$((n + 1))
	cp "$MODDIR/$m" "$I/lib/modules/$(printf %02d "$n")-${m##*/}"
done
cat >"$I/init" <<'EOF'
#!/bin/sh
# initramfs: load the virtio + ext4 modules, mount the root partition, switch.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in /lib/modules/*.ko; do insmod "$m" || echo "initramfs: insmod $m failed"; done
root=/dev/vda2
for a in $(cat /proc/cmdline); do
	case $a in root=*) root=${a#root=} ;; esac
done
n=0
while [ ! -b "$root" ] && [ "$n" -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
if ! mount -t ext4 -o rw "$root" /newroot; then
	echo "initramfs: cannot mount $root; dropping to a shell"
	exec sh
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
EOF
chmod 755 "$I/init"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.img"

# ----------------------------------------------------------------- rootfs --
R=$W/rootfs
mkdir -p "$R"/bin "$R"/sbin "$R"/usr/bin "$R"/usr/sbin "$R"/usr/lib "$R"/etc/init.d \
	"$R"/dev "$R"/proc "$R"/sys "$R"/run "$R"/tmp "$R"/var/log "$R"/var/run "$R"/home "$R"/root/.ssh
chmod 1777 "$R/tmp"
chmod 700 "$R/root" "$R/root/.ssh"
cp "$BUSYBOX" "$R/bin/busybox"
while IFS= read -r applet; do
	[ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)

# Copy a binary and the shared libraries ldd resolves for it (from the
# extracted packages first, then from the host).
copy_bin() { # src dst-in-rootfs
	local src=$1 dst=$2 out lib from
	install -D -m 755 "$src" "$R$dst"
	out=$(LD_LIBRARY_PATH=$W/x/lib/x86_64-linux-gnu:$W/x/usr/lib/x86_64-linux-gnu ldd "$src") ||
		die "ldd $src failed"
	case $out in *"not found"*) die "$src: shared libraries not found on this host: $out" ;; esac
	while read -r lib; do
		[ -n "$lib" ] || continue
		from=$lib
		case $lib in
		"$W"/x/*) lib=${lib#"$W/x"} ;;
		*) from=$(readlink -f "$lib") ;;
		esac
		[ -e "$R$lib" ] || install -D -m 755 "$from" "$R$lib"
	done < <(printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }')
}
copy_bin "$W/x/usr/lib/openssh/sftp-server" /usr/lib/openssh/sftp-server
ln -s openssh/sftp-server "$R/usr/lib/sftp-server" # dropbear's compiled-in path
rm -f "$R/usr/bin/scp"
copy_bin "$W/x/usr/bin/scp" /usr/bin/scp

if [ "$GIT" = 1 ]; then
	# One binary: git runs its helpers (index-pack, ...) as
	# $GIT_EXEC_PATH/git <cmd>. Remote helpers (https) are left out.
	copy_bin "$W/x/usr/bin/git" /usr/bin/git
	mkdir -p "$R/usr/lib/git-core" "$R/usr/share/git-core"
	ln -s /usr/bin/git "$R/usr/lib/git-core/git"
	for c in git-upload-pack git-receive-pack git-upload-archive; do
		ln -s git "$R/usr/bin/$c"
	done
	cp -a "$W/x/usr/share/git-core/templates" "$R/usr/share/git-core/templates"
fi

# Do not put the empty password in /etc/passwd: Debian's static busybox then
# cannot resolve uid 0 ("unknown uid 0"). Both SSH servers read /etc/shadow.
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privilege separation:/run/sshd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$R/etc/shadow" <<'EOF'
root::19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
if [ "$ROOT_PASSWORD" = 1 ]; then
	# The SHA-512 crypt of "djinn" (openssl passwd -6 -salt djinncontract
	# djinn): fixed, so that every build makes the same file.
	sed -i 's|^root::|root:$6$djinncontract$Wqb6Ac/rqtMqDtG6dp3lIjqdUZxAlOhm1QliFYDzhBo6fwTc4oHdtNtx1mw.W98yvjxFRy.hkQqyi4ez4VSwU.:|' "$R/etc/shadow"
fi
chmod 600 "$R/etc/shadow"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
printf '/bin/sh\n/bin/ash\n' >"$R/etc/shells"
echo djinn-tiny >"$R/etc/hostname"
printf '127.0.0.1 localhost djinn-tiny\n' >"$R/etc/hosts"
echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' >"$R/etc/profile"
ln -s /proc/mounts "$R/etc/mtab"

if [ "$SSHD" = openssh ]; then
	copy_bin "$W/x/usr/sbin/sshd" /usr/sbin/sshd
	mkdir -p "$R/etc/ssh"
	for t in ed25519 ecdsa rsa; do
		LD_LIBRARY_PATH=$W/x/usr/lib/x86_64-linux-gnu "$W/x/usr/bin/ssh-keygen" -q -t "$t" -N '' -C djinn-tiny \
			-f "$R/etc/ssh/ssh_host_${t}_key" || die "ssh-keygen -t $t failed"
	done
	if [ "$SSHD_CONF" = imagespage ]; then
		# As Djinn's Images page gives it, but UsePAM no (no PAM here).
		cat >"$R/etc/ssh/sshd_config" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PermitRootLogin yes
PasswordAuthentication yes
PermitEmptyPasswords yes
PubkeyAuthentication no
UsePAM no
UseDNS no
PrintMotd no
AcceptEnv *
PermitUserEnvironment yes
Subsystem sftp /usr/libexec/openssh/sftp-server
EOF
	else
		cat >"$R/etc/ssh/sshd_config" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PermitRootLogin yes
PermitEmptyPasswords yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
AcceptEnv *
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
	fi
	SSH_DAEMON='/usr/sbin/sshd -D -e'
elif [ "$SSHD" = none ]; then
	# No SSH server at all: the machine boots and never answers on port 22.
	SSH_DAEMON=
else
	mkdir -p "$R/etc/dropbear"
	for t in ed25519 ecdsa rsa; do
		dropbearkey -t "$t" -f "$R/etc/dropbear/dropbear_${t}_host_key" >/dev/null 2>&1 ||
			die "dropbearkey -t $t failed"
	done
	copy_bin "$(command -v dropbear 2>/dev/null || echo /usr/sbin/dropbear)" /usr/sbin/dropbear
	# -B: allow the blank root password (dropbear grants it via the "none" method)
	SSH_DAEMON='/usr/sbin/dropbear -F -E -B -p 22'
fi
cat >"$R/etc/inittab" <<EOF
::sysinit:/etc/init.d/rcS
${SSH_DAEMON:+::respawn:$SSH_DAEMON}
ttyS0::respawn:/sbin/getty -L -n -l /bin/sh 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
cat >"$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/sshd
hostname -F /etc/hostname
ip link set lo up
ip link set eth0 up
# QEMU user networking answers DHCP with 10.0.2.15/24; fall back to it.
if ! udhcpc -i eth0 -n -q -t 5 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1; then
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
fi
echo "rcS: network up after $(cut -d' ' -f1 /proc/uptime)s" >/dev/console
EOF
cat >"$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		ip route add default via "$r" dev "$interface"
		break
	done
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	;;
esac
EOF
chmod 755 "$R/etc/init.d/rcS" "$R/etc/udhcpc.script"

# ------------------------------------------------------------------- disk --
# MBR (syslinux mbr.bin) | p1 FAT16 at sector 2048: syslinux, vmlinuz, initrd
#                        | p2 ext4 "djinnroot"
# -h 2048: the FAT's hidden-sector count is the partition start, so the
# syslinux boot sector finds its own partition.
cat >"$W/syslinux.cfg" <<'EOF'
DEFAULT djinn
PROMPT 0
TIMEOUT 0
LABEL djinn
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=/dev/vda2 rw console=ttyS0 quiet
EOF
BOOT_START=2048
BOOT_SECTORS=$((BOOT_MB * 2048))
ROOT_START=$((BOOT_START + BOOT_SECTORS))
ROOT_SECTORS=$((ROOT_MB * 2048))
mkfs.vfat -F 16 -n BOOT -h "$BOOT_START" -C "$W/boot.img" $((BOOT_MB * 1024)) >/dev/null ||
	die "mkfs.vfat failed"
mcopy -i "$W/boot.img" "$VMLINUZ" ::/vmlinuz || die "mcopy vmlinuz failed"
mcopy -i "$W/boot.img" "$W/initrd.img" ::/initrd.img || die "mcopy initrd.img failed"
mcopy -i "$W/boot.img" "$W/syslinux.cfg" ::/syslinux.cfg || die "mcopy syslinux.cfg failed"
syslinux --install "$W/boot.img" || die "syslinux --install failed"
mke2fs -q -t ext4 -L djinnroot -E root_owner=0:0 -d "$R" -F "$W/root.img" "${ROOT_MB}M" >/dev/null ||
	die "mke2fs -d failed"
# mke2fs -d keeps the owners of the source files. Built by an ordinary user
# they would belong to that uid, and sshd refuses host keys that root does not
# own: debugfs (e2fsprogs) gives every inode to root, without a mount.
if ! is_root; then
	(cd "$R" && find . -mindepth 1 -printf '%P\n') |
		awk '{ printf "sif /%s uid 0\nsif /%s gid 0\n", $0, $0 }' >"$W/chown.debugfs"
	debugfs -w -f "$W/chown.debugfs" "$W/root.img" >"$W/debugfs.log" 2>&1 || {
		cat "$W/debugfs.log" >&2
		die "debugfs could not give the root filesystem's files to root"
	}
fi

DISK=$W/disk.raw
truncate -s $(((ROOT_START + ROOT_SECTORS) * 512)) "$DISK"
printf 'label: dos\nstart=%d, size=%d, type=6, bootable\nstart=%d, size=%d, type=83\n' \
	"$BOOT_START" "$BOOT_SECTORS" "$ROOT_START" "$ROOT_SECTORS" | sfdisk -q "$DISK" ||
	die "sfdisk failed"
dd if="$MBR" of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$W/boot.img" of="$DISK" bs=512 seek="$BOOT_START" conv=notrunc,sparse status=none
dd if="$W/root.img" of="$DISK" bs=512 seek="$ROOT_START" conv=notrunc,sparse status=none

TMP_IMAGE=$OUT/.$NAME.tmp.$$
rm -f "$STAMP"
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$DISK" "$TMP_IMAGE" || {
	rm -f "$TMP_IMAGE"
	die "qemu-img convert failed"
}
mv -f "$TMP_IMAGE" "$IMAGE"
printf '%s\n' "$STAMP_TEXT" >"$STAMP.tmp.$$"
mv -f "$STAMP.tmp.$$" "$STAMP"

T1=$(date +%s%N)
size=$(stat -c %s "$IMAGE")
printf 'built %s (%s bytes; kernel %s, %s%s, %d modules) in %d.%02d s\n' "$IMAGE" "$size" "$KPKG" "$SSHD" \
	"$([ "$GIT" = 1 ] && echo ", git")" "${#load_order[@]}" $(((T1 - T0) / 1000000000)) $(((T1 - T0) / 10000000 % 100))
