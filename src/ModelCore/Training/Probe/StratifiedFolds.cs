namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>Stratified k-fold assignment: each class's images, shuffled with the seed, dealt round-robin to the folds.</summary>
internal static class StratifiedFolds
{
    /// <summary>The fold (0..k-1) of each sample. Each fold gets floor or ceil of a class's count / k of that class.</summary>
    public static int[] Assign(IReadOnlyList<int> labels, int folds, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(folds, 2);
        var assignment = new int[labels.Count];
        var random = new Random(seed);
        var next = 0;
        foreach (var group in labels.Select((label, index) => (label, index)).GroupBy(x => x.label).OrderBy(g => g.Key))
        {
            var members = group.Select(x => x.index).ToArray();
            random.Shuffle(members);
            // Continue the round-robin across classes so small classes do not all land in fold 0.
            foreach (var index in members)
            {
                assignment[index] = next;
                next = (next + 1) % folds;
            }
        }
        return assignment;
    }
}
