# A pre-cache of 100,000 mails: a folder that size is written straight
# into Maildir, a client imports it in ten large pages, a note starts the
# build, memcached holds all 100,000 notes (in several chunks), and the
# next sync, served from that pre-cache, returns just the one new mail.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use POSIX ();
use Time::HiRes qw(time);
use DmeTest;
use DmePush;

plan tests => 21;

my $COUNT = 100_000;
my $PAGE = 10_000; # DMESyncPageSize of /dme-bulk
my $CHUNK = 512 * 1024; # DME_MC_CHUNK
my $folder = 'Bulk';
my $svc = services();
my %bob = (user => 'bob', password => 'bob-secret');

sub took { sprintf '%.1f s', time - $_[0] }

# A command whose output would only clutter the test's own; its errors
# still show.
sub quiet {
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        exec @_ or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    die "@_ failed" if $?;
}

# Fresh worker processes: an earlier suite may have restarted memcached
# (see fresh_workers), and the one build below must not fail for that.
fresh_workers();

# The folder over IMAP, so Dovecot knows it; its mails straight into its
# Maildir (Maildir++: ".Bulk"), dated over the last 13 days, all inside
# the 14-day sync window; then indexed once.
my $imap = imap_as('bob', 'bob-secret');
$imap->create($folder) or die $imap->LastError;
my $t0 = time;
quiet('/usr/bin/python3', "$ENV{DME_REPO}/scripts/gen-mailbox.py",
      '--user', 'bob', '--count', $COUNT, '--days', 14,
      '--owner', 'nobody:nogroup', "$svc/mail/bob/.$folder");
diag "writing $COUNT mails: " . took($t0);
$t0 = time;
quiet('doveadm', '-c', "$svc/dovecot/dovecot.conf", 'mailbox', 'status',
      '-u', 'bob', 'messages', $folder);
diag 'indexing: ' . took($t0);
is($imap->message_count($folder), $COUNT, "the folder holds $COUNT mails");
my $uidvalidity = $imap->uidvalidity($folder);

# The client imports the folder: 10 pages of 10,000.
$t0 = time;
my (undef, $client) = enrol('bob', 'bob-secret', '/dme-bulk');
my ($key, $s, %refs);
my $pages = 0;
do {
    my $res = sync_req(%bob, client => $client, folder => $folder,
                       base => '/dme-bulk', key => $key);
    die 'import page: ' . $res->code unless $res->code == 200;
    $s = parse_sync($res->content);
    $refs{$_->{ref}}++ for @{$s->{adds}};
    $key = $s->{key};
    $pages++;
} while ($s->{more} eq 'true' && $pages < 20);
diag 'importing: ' . took($t0);
is($pages, $COUNT / $PAGE, "imported in $pages pages");
is(scalar keys %refs, $COUNT, "$COUNT distinct refs");
ok(!(grep { $_ != 1 } values %refs), 'each once');

# A note for the folder builds its pre-cache.
my $c0 = counters();
$t0 = time;
is(push_put(qq({"user":"bob","event":"messageNew","folder":"$folder",)
            . qq("imap-uidvalidity":$uidvalidity,"imap-uid":$COUNT}))->code,
   204, 'a note for the folder: 204');
my $waited = wait_for_counter('builds', $c0->{builds}, 120);
ok(defined $waited, 'the build finishes');
diag 'building: ' . took($t0);
my @built = error_log_lines(qr/DME10041: .*built \(full, \Q$COUNT\E mails\)/);
is(scalar @built, 1, "logged as a full build of $COUNT mails");

# What memcached holds: a head and its chunks, all verified, with one
# line per mail and no content.
my ($pc, $info) = precache_value('bob', $folder);
ok(defined $pc, 'memcached holds the whole pre-cache');
$pc //= '';
my @lines = split /\n/, $pc;
my $head = shift @lines;
like($head, qr/^dmepc1 \Q$uidvalidity\E \d+ \Q$COUNT\E$/,
     'its header names the UIDVALIDITY and the newest UID');
is(scalar @lines, $COUNT, "$COUNT notes");
is(scalar(grep { !/^\d+ [0-9a-f]{32} \d+$/ } @lines), 0,
   'each "uid checksum arrival"');
my %uids = map { (split / /)[0] => 1 } @lines;
is(scalar keys %uids, $COUNT, 'for distinct UIDs');
is_deeply([sort { $a <=> $b } map { (split /:/)[1] } keys %refs],
          [sort { $a <=> $b } keys %uids], 'exactly those the client holds');
is($info->{chunks}, POSIX::ceil(length($pc) / $CHUNK),
   sprintf('in %d chunks of at most 512 KB (%.1f MB)', $info->{chunks} // 0,
           length($pc) / 1e6));

# One more mail; the next sync, from the pre-cache, brings just that one.
my $new_uid = append_mail($imap, $folder, 'The one new mail');
$c0 = counters();
$t0 = time;
my $res = sync_req(%bob, client => $client, folder => $folder, key => $key,
                   type => 'push');
my $dt = time - $t0;
diag 'syncing: ' . took($t0);
$s = parse_sync($res->decoded_content);
is($res->code, 200, 'the sync answers 200');
is($s->{source}, 'pre-cache', 'from the pre-cache');
is_deeply([map { $_->{ref} } @{$s->{adds}}], ["$uidvalidity:$new_uid"],
          'with exactly the new mail');
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['The one new mail'],
          'its subject');
is(scalar @{$s->{deletes}} + @{$s->{changes}}, 0, 'no delete, no change');
ok(counters()->{hits} > $c0->{hits}, 'counted as a hit');
ok($dt < 20, sprintf('in %.1f s', $dt));
$imap->logout;
