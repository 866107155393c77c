// Nova's main for Zig functions: the handler's file (NOVA_PATH) exports
// `pub fn NOVA_FUNCTION(allocator: std.mem.Allocator, event: []const u8) ![]const u8`, taking
// the event's JSON text and returning the result's JSON text (an error's name is the
// invocation's error). The Lambda Runtime API client is C (nova_main.c, POSIX sockets), which
// Zig compiles alongside: it does not change with each Zig release as std's networking does.
const std = @import("std");
const handler = @import("NOVA_PATH");

// Everything the handler allocates for one event is freed before the next.
var arena = std.heap.ArenaAllocator.init(std.heap.c_allocator);

export fn nova_invoke(event: [*]const u8, length: usize, out: *[*]const u8, out_length: *usize) c_int {
    _ = arena.reset(.free_all);
    const result = handler.NOVA_FUNCTION(arena.allocator(), event[0..length]) catch |err| {
        const name = @errorName(err);
        out.* = name.ptr;
        out_length.* = name.len;
        return 1;
    };
    out.* = result.ptr;
    out_length.* = result.len;
    return 0;
}

extern fn nova_main() c_int;

pub fn main() u8 {
    return @intCast(nova_main());
}
