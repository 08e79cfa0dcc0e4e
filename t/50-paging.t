# Large answers are paged (DMESyncPageSize 5 under /dme-small): every
# page holds at most five entries, more="true" until the last, and the
# pages together hold every mail once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use DmeTest;

plan tests => 8;

my $imap = imap_as('bob', 'bob-secret');
my $folder = 'Paged' . $$;
$imap->create($folder) or die $imap->LastError;
append_mail($imap, $folder, "Mail $_") for 1 .. 12;

my ($res, $client) = enrol('bob', 'bob-secret', '/dme-small');
is($res->code, 201, 'enrolled');

my (@pages, %seen, $key);
for my $n (1 .. 5) {
    $res = sync_req(client => $client, folder => $folder, key => $key,
                    base => '/dme-small', user => 'bob',
                    password => 'bob-secret', type => 'import');
    my $s = parse_sync($res->decoded_content);
    push @pages, scalar @{$s->{adds}};
    $seen{$_->{subject}}++ for @{$s->{adds}};
    $key = $s->{key};
    last if $s->{more} eq 'false';
}
is_deeply(\@pages, [5, 5, 2], 'three pages of 5, 5 and 2');
is(scalar keys %seen, 12, 'every mail came');
ok(!(grep { $_ != 1 } values %seen), 'each exactly once');
my @first = map { "Mail $_" } reverse 8 .. 12;
$res = sync_req(client => $client, folder => $folder, key => $key,
                base => '/dme-small', user => 'bob', password => 'bob-secret');
my $s = parse_sync($res->decoded_content);
is(scalar @{$s->{adds}}, 0, 'after the last page nothing is left');
is($s->{more}, 'false', 'and more is false');

# Newest first: the first page of a fresh import holds the newest mails.
$res = sync_req(client => $client, folder => $folder, base => '/dme-small',
                user => 'bob', password => 'bob-secret');
$s = parse_sync($res->decoded_content);
is_deeply([map { $_->{subject} } @{$s->{adds}}], \@first,
          'a fresh import starts with the newest mails');
is($s->{more}, 'true', 'with more to come');
$imap->logout;
