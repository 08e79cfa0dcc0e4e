# Pre-caching at its edges: change notifications that must be refused or
# ignored, user names with a space and a non-ASCII letter, a folder
# recreated under a new UIDVALIDITY, a client's own push endpoint, the
# long-poll heartbeat adapting to how long connections hold, and the
# STATUS poll for changes the mail system does not push.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time sleep);
use DmeTest;
use DmePush;

plan tests => 91;

my $imap = imap_as('alice', 'alice-secret');

# A new client of the user that has imported the folder (all pages);
# returns its id, its key and the last answer.
sub imported {
    my ($user, $password, $folder) = @_;
    my (undef, $client) = enrol($user, $password);
    my $res = sync_req(client => $client, user => $user,
                       password => $password, folder => $folder);
    my $s = parse_sync($res->decoded_content);
    while ($s->{more} eq 'true') {
        $res = sync_req(client => $client, user => $user,
                        password => $password, folder => $folder,
                        key => $s->{key});
        $s = parse_sync($res->decoded_content);
    }
    return ($client, $s->{key}, $s);
}

# A note as Dovecot's OX driver writes it.
sub push_note {
    my ($user, $folder) = @_;
    return qq({"user":"$user","event":"messageNew","folder":"$folder",)
         . qq("imap-uidvalidity":1796319848,"imap-uid":7,)
         . qq("from":"Bob <bob\@example.org>","subject":"Lunch"});
}

sub refusals { scalar error_log_lines(qr/DME10030/) }

# t/60-precache.t restarts memcached, which leaves stale connections in
# the worker processes.
fresh_workers();
my ($alice, $alice_key) = imported('alice', 'alice-secret', 'INBOX');

# Earlier suites (and the STATUS poll catching up with them) may still be
# building; the counters below must move for this file's reasons only.
my $builds0 = settle_builds();

# ---- 1. malformed notes: 400 (413 when too big), logged, no build -------

my $secret = 'Merger talks with Initech';
my @bad = (
    ['not JSON', 'not JSON at all', 'not JSON'],
    ['imap-uid as a string',
     qq({"user":"alice","event":"messageNew","folder":"INBOX",)
     . qq("imap-uidvalidity":1796319848,"imap-uid":"7","subject":"$secret"}),
     'imap-uid not a 32-bit unsigned integer'],
    ['imap-uid negative',
     qq({"user":"alice","event":"messageNew","folder":"INBOX",)
     . qq("imap-uidvalidity":1796319848,"imap-uid":-7}),
     'imap-uid not a 32-bit unsigned integer'],
    ['imap-uid past 2^32-1',
     qq({"user":"alice","event":"messageNew","folder":"INBOX",)
     . qq("imap-uidvalidity":1796319848,"imap-uid":4294967296}),
     'imap-uid not a 32-bit unsigned integer'],
    ['user missing',
     qq({"event":"messageNew","folder":"INBOX",)
     . qq("imap-uidvalidity":1796319848,"imap-uid":7}),
     'user missing'],
    ['a key twice',
     qq({"user":"alice","user":"bob","event":"messageNew","folder":"INBOX",)
     . qq("imap-uidvalidity":1796319848,"imap-uid":7}),
     'duplicate key'],
);
for my $b (@bad) {
    my ($what, $body, $why) = @$b;
    my $n0 = refusals();
    my $res = push_put($body);
    is($res->code, 400, "$what: 400");
    my @new = (error_log_lines(qr/DME10030/))[$n0 .. refusals() - 1];
    is(scalar @new, 1, "$what: one DME10030 line");
    like($new[0] // '', qr/refused a change notification: \Q$why\E$/,
         "$what: logged as \"$why\"");
}
ok(!(grep { /Merger|Initech/ } error_log_lines(qr/DME10030/)),
   'the log never quotes a note');

my $n0 = refusals();
my $big = push_note('alice', 'INBOX');
$big =~ s/"Lunch"/'"' . ('x' x (70 * 1024)) . '"'/e;
my $res = push_put($big);
is($res->code, 413, 'a 70 KB note: 413');
like($res->content, qr/<error xmlns="urn:dme:1" code="[a-z-]+"/,
     'with an XML error body');
is(refusals() - $n0, 1, 'and one DME10030 line');

$res = push_put(undef, method => 'GET');
is($res->code, 405, 'GET on /dme/push: 405');
is($res->header('Allow'), 'PUT, POST', 'Allow names PUT and POST');

$res = push_put(push_note('alice', 'INBOX'), user => 'alice',
                password => 'alice-secret');
ok($res->code == 401 || $res->code == 403,
   'a client user may not push (' . $res->code . ')');

sleep 1.5; # a build started by any of the above would be done by now
is(counters()->{builds}, $builds0, 'none of these started a build');

# The same note, well-formed, does: the refusals above were for the faults.
$res = push_put(push_note('alice', 'INBOX'));
is($res->code, 204, 'a well-formed note: 204');
ok(defined wait_for_counter('builds', $builds0), 'and a build');
$res = sync_req(client => $alice, key => $alice_key, type => 'push');
my $s = parse_sync($res->decoded_content);
is($s->{source}, 'pre-cache', 'whose pre-cache serves the next sync');
is(scalar @{$s->{adds}} + @{$s->{deletes}} + @{$s->{changes}}, 0,
   'which holds nothing new');
$alice_key = $s->{key};

# ---- 2. users without a client; a name with a space and non-ASCII ---------

my $jose = "Jos\xc3\xa9 Smith"; # UTF-8 bytes, as Basic auth carries them
my $jose_pw = 'jose-secret';
$builds0 = settle_builds(1);
my $ign0 = scalar error_log_lines(qr/DME10031/);
$res = push_put(push_note('nobody-here', 'INBOX'));
is($res->code, 204, 'a note for an unknown user: 204');
$res = push_put(push_note($jose, 'INBOX'));
is($res->code, 204, 'a note for "José Smith", who has no client yet: 204');
is(scalar error_log_lines(qr/DME10031/) - $ign0, 2,
   'both logged as ignored (DME10031)');
sleep 1;
is(counters()->{builds}, $builds0, 'no build for either');
is(request(method => 'GET', path => '/dme/admin/counters',
           user => $ENV{DME_PUSH_USER},
           password => $ENV{DME_PUSH_PASSWORD})->code, 200,
   'the server is still up');

# José Smith enrols and imports over a login with the technical user.
my $jimap = imap_as($jose, $jose_pw);
append_mail($jimap, 'INBOX', "Hola Jose $_") for 1 .. 2;
my ($jc, $jkey, $js) = imported($jose, $jose_pw, 'INBOX');
like($jc // '', qr/^[a-z2-7]{20,}$/, 'José Smith enrols');
is(scalar @{$js->{adds}}, 2, 'and imports his two mails');
append_mail($jimap, 'INBOX', 'Second note for Jose');
$builds0 = counters()->{builds};
$res = push_put(push_note($jose, 'INBOX'));
is($res->code, 204, 'a note for José Smith: 204');
ok(defined wait_for_counter('builds', $builds0), 'builds his pre-cache');
my ($pc, $info) = precache_value($jose, 'INBOX');
ok(defined $pc, 'stored under the SHA-256 of his name and folder');
is($info->{key}, 'dme:pc:' . sha256_hex("$jose\nINBOX"), 'that key');
is(scalar(() = ($pc // '') =~ /\n/g) - 1, 3, 'holding his three mails');
$res = sync_req(client => $jc, user => $jose, password => $jose_pw,
                key => $jkey, type => 'push');
$s = parse_sync($res->decoded_content);
is($res->code, 200, 'his sync answers 200');
is($s->{source}, 'pre-cache', 'from the pre-cache');
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['Second note for Jose'],
          'with exactly the new mail');
$jimap->logout;

# ---- 3. a folder recreated under a new UIDVALIDITY ----------------------

my $folder = 'Renewed';
$imap->create($folder) or die $imap->LastError;
append_mail($imap, $folder, "Old $_") for 1 .. 3;
my ($rc, $rkey, $rs) = imported('alice', 'alice-secret', $folder);
my @old_refs = sort map { $_->{ref} } @{$rs->{adds}};
is(scalar @old_refs, 3, 'three mails imported from the folder');
my ($uv1) = $old_refs[0] =~ /^(\d+):/;
$builds0 = counters()->{builds};
is(push_put(push_note('alice', $folder))->code, 204, 'a note for that folder');
ok(defined wait_for_counter('builds', $builds0), 'builds its pre-cache');
ok(scalar precache_value('alice', $folder), 'which memcached holds');

$imap->select('INBOX');
$imap->delete($folder) or die $imap->LastError;
$imap->create($folder) or die $imap->LastError;
my @new_uids = map { scalar append_mail($imap, $folder, "New $_") } 1 .. 2;
my $uv2 = $imap->uidvalidity($folder);
isnt($uv2, $uv1, "recreated: UIDVALIDITY $uv1 -> $uv2");
$builds0 = counters()->{builds};
is(push_put(push_note('alice', $folder))->code, 204, 'a note again');
ok(defined wait_for_counter('builds', $builds0), 'builds again');
like(scalar(precache_value('alice', $folder)) // '', qr/^dmepc1 $uv2 /,
     'the pre-cache now carries the new UIDVALIDITY');
$res = sync_req(client => $rc, folder => $folder, key => $rkey,
                type => 'push');
$s = parse_sync($res->decoded_content);
is($s->{source}, 'pre-cache', 'the sync uses it');
is_deeply([sort @{$s->{deletes}}], \@old_refs,
          'deletes exactly the three old refs');
is_deeply([sort map { $_->{ref} } @{$s->{adds}}],
          [sort map { "$uv2:$_" } @new_uids], 'adds the two new refs');
is_deeply([sort map { $_->{subject} } @{$s->{adds}}], ['New 1', 'New 2'],
          'with their subjects');
is(scalar @{$s->{changes}}, 0, 'and changes nothing');
$res = sync_req(client => $rc, folder => $folder, key => $s->{key});
$s = parse_sync($res->decoded_content);
is(scalar @{$s->{adds}} + @{$s->{deletes}} + @{$s->{changes}}, 0,
   'the next sync finds nothing more');

# ---- 4. a client's push endpoint ----------------------------------------

for my $url ('ftp://127.0.0.1/hook', 'javascript:alert(1)',
             'http://user:pw@127.0.0.1/hook', 'http:///hook') {
    $res = request(path => '/dme/clients', user => 'bob',
                   password => 'bob-secret',
                   body => '<enrol xmlns="urn:dme:1"><name>Phone</name>'
                           . "<pushUrl>$url</pushUrl></enrol>");
    is($res->code, 400, "pushUrl $url: 400");
}

# Enabling push sets a METADATA entry on bob's INBOX, a change the STATUS
# poll sees (HIGHESTMODSEQ) and builds for; that is over before the client
# with the endpoint enrols.
push_enable('bob');
settle_builds();
my $hook = hook_start();
my $url = "http://127.0.0.1:$hook->{port}/hook";
$res = request(path => '/dme/clients', user => 'bob', password => 'bob-secret',
               body => '<enrol xmlns="urn:dme:1"><name>Phone</name>'
                       . "<pushUrl>$url</pushUrl></enrol>");
is($res->code, 201, 'a client with an http pushUrl enrols');
my ($bc) = $res->decoded_content =~ /<client id="([^"]+)"/;
sleep 2.5; # the STATUS poll has seen bob's INBOX (as it is before the mail)
my $c0 = counters();
deliver('bob', 'Quarterly zebra figures', 'Body about zebras');
ok(defined wait_for_counter('pushes', $c0->{pushes}, 5),
   'a delivery pushes to the endpoint');
sleep 3; # longer than the STATUS poll interval
my @got = hook_requests($hook);
is(scalar @got, 1, 'exactly one request (the STATUS poll does not build '
                   . 'what the push built)');
is_deeply([map { $_->{method} } @got], [('POST') x @got], 'each a POST');
is_deeply([map { $_->{path} } @got], [('/hook') x @got],
          'to the registered path');
is_deeply([map { $_->{headers}{'content-type'} } @got],
          [('application/json') x @got], 'of JSON');
my $doc = qq({"client":"$bc","folder":"INBOX","reason":"new-mail"});
is_deeply([map { $_->{body} } @got], [($doc) x @got],
          'saying which client and folder, nothing else');
ok(!(grep { $_->{body} =~ /zebra|pusher/i } @got),
   'no subject, sender or body');
my $c1 = counters();
is($c1->{pushes} - $c0->{pushes}, scalar @got, 'one push counted per request');
is($c1->{push_failures}, $c0->{push_failures}, 'no push failed');
hook_stop($hook);

# ---- 5. the long-poll heartbeat -----------------------------------------

my $cimap = imap_as('carol', 'carol-secret');
$cimap->create('Waiting');
$cimap->logout;
my (undef, $cc) = enrol('carol', 'carol-secret');

sub long_poll {
    my $t0 = time;
    my $w = start_wait(client => $cc, folder => 'Waiting', user => 'carol',
                       password => 'carol-secret');
    return {w => $w, t0 => $t0};
}

sub ended {
    my ($lp) = @_;
    my $r = finish_wait($lp->{w});
    my %a = $r->{body} =~ /(\w+)="([^"]*)"/g;
    return {%a, code => $r->{code}, dt => $r->{time} - $lp->{t0},
            end => $r->{time}};
}

my $w = ended(long_poll());
is($w->{code}, 200, 'a long-poll answers 200');
is($w->{changed}, 'false', 'nothing changed');
ok($w->{dt} >= 1.9 && $w->{dt} < 2.9,
   sprintf('the first runs its minimum heartbeat, 2 s (%.2f)', $w->{dt}));
is($w->{heartbeat}, 3, 'and proposes a longer one: 3');
$w = ended(long_poll());
ok($w->{dt} >= 2.9 && $w->{dt} < 3.9,
   sprintf('the next lasts 3 s (%.2f)', $w->{dt}));
is($w->{heartbeat}, 4, 'and proposes 4');

my $older = long_poll();
sleep 1;
my $newer = long_poll();
my $o = ended($older);
is($o->{superseded}, 'true', 'a reconnect while one runs supersedes it');
is($o->{changed}, 'false', 'which reports no change');
ok($o->{end} - $newer->{t0} < 0.9,
   sprintf('and ends at once (%.2f s later)', $o->{end} - $newer->{t0}));
my $n = ended($newer);
ok($n->{dt} >= 1.9 && $n->{dt} < 2.9,
   sprintf('the early one runs half the heartbeat, 2 s (%.2f)', $n->{dt}));
is($n->{heartbeat}, 3, 'and proposes a shorter one than before: 3 < 4');
is($n->{superseded}, undef, 'it was not superseded itself');

# ---- 6. the STATUS poll ---------------------------------------------------

settle_builds();
$c0 = counters();
append_mail($imap, 'INBOX', 'Appended, never pushed');
my $waited = wait_for_counter('builds', $c0->{builds}, 8);
ok(defined $waited, sprintf('an IMAP APPEND leads to a build (%.1f s)',
                            $waited // -1));
ok(defined $waited && $waited < 5, 'within 5 s');
$res = sync_req(client => $alice, key => $alice_key, type => 'scheduled');
$s = parse_sync($res->decoded_content);
is($s->{source}, 'pre-cache', 'the next sync is served from the pre-cache');
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['Appended, never pushed'],
          'with the appended mail');
ok(counters()->{hits} > $c0->{hits}, 'a hit');
$imap->logout;

is(scalar error_log_lines(qr/exit signal|AH00052/), 0, 'no worker crashed');
