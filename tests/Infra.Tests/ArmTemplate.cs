using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>
/// Read-only queries over a compiled ARM template. Bicep emits module bodies as nested
/// <c>Microsoft.Resources/deployments</c> templates, and <c>resources</c> is an array or (with
/// languageVersion 2.0) an object keyed by symbolic name; both shapes are handled.
/// </summary>
internal sealed partial class ArmTemplate(JsonObject root)
{
    public JsonObject Root { get; } = root;

    public static ArmTemplate Parse(string json) =>
        new(JsonNode.Parse(json)?.AsObject() ?? throw new InvalidOperationException("empty template"));

    /// <summary>The resources declared directly in this template (existing references excluded).</summary>
    public IEnumerable<JsonObject> Resources => Enumerate(Root["resources"])
        .Where(resource => resource["existing"]?.GetValue<bool>() != true);

    public IEnumerable<JsonObject> OfType(string type) =>
        Resources.Where(resource => string.Equals((string?)resource["type"], type, StringComparison.OrdinalIgnoreCase));

    public JsonObject Single(string type) => Assert.Single(OfType(type));

    /// <summary>The module deployed under <paramref name="deploymentName"/>: its deployment resource and body.</summary>
    public (JsonObject Deployment, ArmTemplate Template) Module(string deploymentName)
    {
        var deployment = Assert.Single(OfType("Microsoft.Resources/deployments"), d => (string?)d["name"] == deploymentName);
        var template = deployment["properties"]?["template"]?.AsObject()
            ?? throw new InvalidOperationException($"module {deploymentName} has no inline template");
        return (deployment, new ArmTemplate(template));
    }

    /// <summary>Every template in the tree: this one and all nested module bodies.</summary>
    public IEnumerable<ArmTemplate> SelfAndModules()
    {
        yield return this;
        foreach (var deployment in OfType("Microsoft.Resources/deployments"))
        {
            if (deployment["properties"]?["template"] is JsonObject nested)
            {
                foreach (var template in new ArmTemplate(nested).SelfAndModules())
                {
                    yield return template;
                }
            }
        }
    }

    /// <summary>
    /// The built-in role definition ids this template assigns, resolved from literals or
    /// <c>variables('name')</c> in <c>subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ...)</c>.
    /// Assignments in a copy loop over a parameter (storageDataRoles.bicep) are left out: their roles are the
    /// caller's parameter values (<see cref="Grants"/>).
    /// </summary>
    public IReadOnlySet<string> AssignedRoleIds() => OfType("Microsoft.Authorization/roleAssignments")
        .Select(assignment => (string?)assignment["properties"]?["roleDefinitionId"] ?? "")
        .Where(expression => !LoopParameter().IsMatch(expression))
        .Select(ResolveGuid)
        .ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The grants a storageDataRoles.bicep module deployed under <paramref name="deploymentName"/> makes: each
    /// (container or queue name, role definition id), from the <paramref name="parameter"/> array
    /// (<c>containerRoles</c> or <c>queueRoles</c>) with this template's variables resolved.
    /// </summary>
    public IReadOnlyList<(string Target, string RoleId)> Grants(string deploymentName, string parameter)
    {
        var key = parameter == "containerRoles" ? "container" : "queue";
        var value = Module(deploymentName).Deployment["properties"]?["parameters"]?[parameter]?["value"] as JsonArray ?? [];
        return value.OfType<JsonObject>()
            .Select(grant => (Resolve((string?)grant[key]) ?? "", Resolve((string?)grant["roleId"]) ?? ""))
            .ToList();
    }

    /// <summary>A literal string, or the value of a template variable referenced as <c>[variables('x')]</c>.</summary>
    public string? Resolve(string? expression)
    {
        if (expression is null)
        {
            return null;
        }
        var match = WholeVariable().Match(expression);
        return match.Success ? (string?)Root["variables"]?[match.Groups[1].Value] : expression;
    }

    private string ResolveGuid(string expression)
    {
        var literal = Guid().Match(expression);
        if (literal.Success)
        {
            return literal.Value;
        }
        var variable = VariableReference().Match(expression);
        Assert.True(variable.Success, $"role definition id is neither a literal nor a variable: {expression}");
        var value = (string?)Root["variables"]?[variable.Groups[1].Value] ?? "";
        Assert.Matches(Guid(), value);
        return value;
    }

    private static IEnumerable<JsonObject> Enumerate(JsonNode? resources) => resources switch
    {
        JsonArray array => array.OfType<JsonObject>(),
        JsonObject map => map.Select(pair => pair.Value).OfType<JsonObject>(),
        _ => [],
    };

    [GeneratedRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", RegexOptions.IgnoreCase)]
    private static partial Regex Guid();

    [GeneratedRegex(@"variables\('(\w+)'\)")]
    private static partial Regex VariableReference();

    [GeneratedRegex(@"parameters\('\w+'\)\[copyIndex\(\)\]\.roleId")]
    private static partial Regex LoopParameter();

    [GeneratedRegex(@"^\[variables\('(\w+)'\)\]$")]
    private static partial Regex WholeVariable();
}
