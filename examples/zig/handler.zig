// A Zig function for Nova (runtime zig, handler handler.handler): the event's JSON text in, the
// result's JSON text out; an error's name becomes the invocation's error (Zig.Error).
const std = @import("std");

pub fn handler(allocator: std.mem.Allocator, event: []const u8) ![]const u8 {
    const Event = struct { name: []const u8 };
    const parsed = std.json.parseFromSlice(Event, allocator, event, .{ .ignore_unknown_fields = true }) catch
        return error.NoName;
    return std.fmt.allocPrint(allocator, "{{\"hi\":\"{s}\"}}", .{parsed.value.name});
}
