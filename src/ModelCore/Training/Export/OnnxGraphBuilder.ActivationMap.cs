using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Export;

/// <summary>A feature map whose global average pool is a slice of the features the head reads.</summary>
/// <param name="Value">The (N, Channels, H, W) value in the graph.</param>
/// <param name="Channels">Its channel count (its slice's width in the features, which are concatenated in the maps' order).</param>
internal sealed record PooledMap(string Value, int Channels);

/// <summary>The class activation map (docs/architecture.md, "Why: activation maps").</summary>
internal sealed partial class OnnxGraphBuilder
{
    /// <summary>
    /// The exact class activation map of a linear head <paramref name="key"/> (weight classes x F, bias) over
    /// features that are the concatenated global average pools of <paramref name="maps"/>: for each class c, the grid
    /// <c>sum over maps s of up(W̃[c, slice s] · A_s) + b̃[c]</c> on the finest map's grid, where W̃ and b̃ are centred over
    /// the classes (each class's weights minus the classes' mean, which changes no probability). Each cell is that
    /// region's share of the class's logit: with the coarser maps repeated onto the finer grid (an integer ratio, as
    /// ResNets' stages have at even sizes), the grid's mean is exactly <c>logit_c - mean over classes of the logits</c>,
    /// that is <c>log p_c - mean log p</c>. Built from Transpose, MatMul, Resize and Sum only, so the int8 pass (which
    /// quantises what Conv and Add read and write) leaves it in float. Returns (N, classes, H, W).
    /// </summary>
    public string ActivationMap(IReadOnlyList<PooledMap> maps, string key)
    {
        ArgumentNullException.ThrowIfNull(maps);
        if (maps.Count == 0)
        {
            throw new ArgumentException("An activation map needs at least one pooled feature map.", nameof(maps));
        }
        using var scope = NewDisposeScope();
        var weight = state[$"{key}.weight"].detach().cpu().to_type(ScalarType.Float32);
        var bias = state[$"{key}.bias"].detach().cpu().to_type(ScalarType.Float32);
        var classes = (int)weight.shape[0];
        if (weight.shape[1] != maps.Sum(m => m.Channels))
        {
            throw new InvalidOperationException($"The head reads {weight.shape[1]} features; the pooled maps have {maps.Sum(m => m.Channels)} channels.");
        }
        var centred = (weight - weight.mean([0], keepdim: true)).contiguous();
        var centredBias = (bias - bias.mean()).contiguous();
        // The finest grid: the last map (ResNets pool their last stages last first, so the earliest stage is last).
        var finest = maps[^1].Value;
        var grids = new List<string>();
        var offset = 0;
        foreach (var map in maps)
        {
            // (C, classes): the map's slice of the centred weights, transposed for a MatMul over channels last.
            var slice = centred.narrow(1, offset, map.Channels).t().contiguous().data<float>().ToArray();
            offset += map.Channels;
            var channelsLast = Unary("Transpose", map.Value, Ints("perm", 0, 2, 3, 1));
            var scores = Node("MatMul", [channelsLast, Constant($"cam_weight_{counter}", slice, map.Channels, classes)]);
            var grid = Unary("Transpose", scores, Ints("perm", 0, 3, 1, 2));
            if (!ReferenceEquals(map, maps[^1]))
            {
                // Nearest (each coarse cell repeated), to the finest map's height and width.
                var sizes = Node("Concat", [
                    Node("Slice", [Node("Shape", [grid]), Constant($"cam_start_{counter}", [0L]), Constant($"cam_end_{counter}", [2L]), Constant($"cam_axis_{counter}", [0L])]),
                    Node("Slice", [Node("Shape", [finest]), Constant($"cam_start_{counter}", [2L]), Constant($"cam_end_{counter}", [4L]), Constant($"cam_axis_{counter}", [0L])]),
                ], Int("axis", 0));
                grid = Node("Resize", [grid, "", "", sizes],
                    Text("mode", "nearest"), Text("coordinate_transformation_mode", "asymmetric"), Text("nearest_mode", "floor"));
            }
            grids.Add(grid);
        }
        grids.Add(Constant($"cam_bias_{counter}", centredBias.data<float>().ToArray(), classes, 1, 1));
        return Node("Sum", grids);
    }

    private static Onnx.AttributeProto Text(string name, string value) =>
        new() { Name = name, Type = Onnx.AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8(value) };
}
